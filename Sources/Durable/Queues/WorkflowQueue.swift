/// A durable queue: workflows enqueued on it start when capacity allows, in whichever process serves it.
///
/// Declare queues in code and register them with ``DurableRuntime/register(queue:)`` in every process that
/// enqueues onto or serves them. Limits hold across all processes sharing the database.
public struct WorkflowQueue: Sendable, Hashable {
    /// At most `limit` workflows start per `period` (counted across processes).
    public struct RateLimit: Sendable, Hashable {
        /// Starts allowed per period.
        public var limit: Int
        /// The sliding window.
        public var period: Duration
        /// Creates a rate limit.
        public init(limit: Int, period: Duration) {
            self.limit = limit
            self.period = period
        }
    }

    /// The queue's name, stored in `workflow_status.queue_name`.
    public var name: String
    /// The most workflows of this queue running at once across all processes.
    public var concurrency: Int?
    /// The most workflows of this queue running at once in one process.
    public var workerConcurrency: Int?
    /// How many may start per period.
    public var rateLimit: RateLimit?

    /// The queue DBOS uses for recovery, resume and fork; always served.
    public static let internalQueueName = "_dbos_internal_queue"

    /// Creates a queue declaration.
    public init(_ name: String, concurrency: Int? = nil, workerConcurrency: Int? = nil, rateLimit: RateLimit? = nil) {
        self.name = name
        self.concurrency = concurrency
        self.workerConcurrency = workerConcurrency
        self.rateLimit = rateLimit
    }

    /// True when starts must be decided under a queue-wide lock (a budget shared by all processes).
    var hasSharedBudget: Bool { concurrency != nil || rateLimit != nil }

    func validate() throws {
        func invalid(_ message: String) -> DurableError { DurableError(.invalidConfiguration, "queue '\(name)': \(message)") }
        if name.isEmpty { throw invalid("the name is empty") }
        if name.contains("\0") { throw invalid("the name contains a NUL byte") }
        if let concurrency, concurrency < 1 { throw invalid("concurrency must be at least 1") }
        if let workerConcurrency, workerConcurrency < 1 { throw invalid("workerConcurrency must be at least 1") }
        if let rateLimit, rateLimit.limit < 1 || rateLimit.period <= .zero { throw invalid("a rate limit needs a positive limit and period") }
    }
}

/// How to enqueue a workflow.
public struct EnqueueOptions: Sendable {
    /// What to do when another live workflow on the queue holds the same deduplication ID.
    public enum DeduplicationPolicy: Sendable {
        /// Throw ``DurableError/Code/queueDeduplicated``.
        case reject
        /// Return a handle to the workflow holding the ID.
        case returnExisting
    }

    /// The workflow ID (idempotency key); a random UUID when nil.
    public var id: String?
    /// Lower runs first; 0 (the default) is the highest priority.
    public var priority: Int
    /// At most one live workflow per queue holds a deduplication ID.
    public var deduplicationID: String?
    /// See ``DeduplicationPolicy``.
    public var deduplicationPolicy: DeduplicationPolicy
    /// Start no earlier than this long from now.
    public var delay: Duration?
    /// Cancel the workflow this long after it starts (the deadline is set when it is dequeued).
    public var timeout: Duration?

    /// Creates options.
    public init(id: String? = nil, priority: Int = 0, deduplicationID: String? = nil, deduplicationPolicy: DeduplicationPolicy = .reject, delay: Duration? = nil, timeout: Duration? = nil) {
        self.id = id
        self.priority = priority
        self.deduplicationID = deduplicationID
        self.deduplicationPolicy = deduplicationPolicy
        self.delay = delay
        self.timeout = timeout
    }
}
