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
    /// The most workflows of any one partition running at once across all processes.
    public var partitionConcurrency: Int?
    /// The most workflows of any one partition running at once in one process.
    public var partitionWorkerConcurrency: Int?
    /// How many workflows of any one partition may start per period.
    public var partitionRateLimit: RateLimit?

    /// The queue DBOS uses for recovery, resume and fork; always served.
    public static let internalQueueName = "_dbos_internal_queue"

    /// Creates a queue declaration.
    ///
    /// Setting any `partition…` limit makes the queue *partitioned*, as in DBOS: every enqueue must name a
    /// partition (``EnqueueOptions/partitionKey``), each partition gets those limits of its own, and
    /// `concurrency`, `workerConcurrency` and `rateLimit` still apply to the queue as a whole. Deduplication is not
    /// available on a partitioned queue.
    public init(
        _ name: String, concurrency: Int? = nil, workerConcurrency: Int? = nil, rateLimit: RateLimit? = nil,
        partitionConcurrency: Int? = nil, partitionWorkerConcurrency: Int? = nil, partitionRateLimit: RateLimit? = nil
    ) {
        self.name = name
        self.concurrency = concurrency
        self.workerConcurrency = workerConcurrency
        self.rateLimit = rateLimit
        self.partitionConcurrency = partitionConcurrency
        self.partitionWorkerConcurrency = partitionWorkerConcurrency
        self.partitionRateLimit = partitionRateLimit
    }

    /// True when each enqueue names a partition and the partition limits apply (`partition_queue` in DBOS).
    public var isPartitioned: Bool {
        partitionConcurrency != nil || partitionWorkerConcurrency != nil || partitionRateLimit != nil
    }

    /// True when starts must be decided under a lock (a budget shared by all processes).
    var hasSharedBudget: Bool { hasQueueWideBudget || partitionConcurrency != nil || partitionRateLimit != nil }

    /// True when the shared budget spans the whole queue, so partitions must not be claimed independently.
    var hasQueueWideBudget: Bool { concurrency != nil || rateLimit != nil }

    func validate() throws {
        func invalid(_ message: String) -> DurableError {
            DurableError(.invalidConfiguration, "queue '\(ArgumentChecks.shown(name))': \(message)")
        }
        if name.isEmpty { throw invalid("the name is empty") }
        if let problem = ArgumentChecks.problem(with: name) { throw invalid("the name \(problem)") }
        if let concurrency, concurrency < 1 { throw invalid("concurrency must be at least 1") }
        if let workerConcurrency, workerConcurrency < 1 { throw invalid("workerConcurrency must be at least 1") }
        if let rateLimit, rateLimit.limit < 1 || rateLimit.period <= .zero {
            throw invalid("a rate limit needs a positive limit and period")
        }
        if let partitionConcurrency, partitionConcurrency < 1 {
            throw invalid("partitionConcurrency must be at least 1")
        }
        if let partitionWorkerConcurrency, partitionWorkerConcurrency < 1 {
            throw invalid("partitionWorkerConcurrency must be at least 1")
        }
        if let partitionRateLimit, partitionRateLimit.limit < 1 || partitionRateLimit.period <= .zero {
            throw invalid("a partition rate limit needs a positive limit and period")
        }
        // A per-partition limit above the queue's own can never take effect; it is almost surely a mistake.
        if let partitionConcurrency, let concurrency, partitionConcurrency > concurrency {
            throw invalid("partitionConcurrency (\(partitionConcurrency)) must not exceed concurrency (\(concurrency))")
        }
        if let partitionWorkerConcurrency, let partitionConcurrency, partitionWorkerConcurrency > partitionConcurrency {
            throw invalid(
                "partitionWorkerConcurrency (\(partitionWorkerConcurrency)) must not exceed partitionConcurrency (\(partitionConcurrency))"
            )
        }
        if let partitionWorkerConcurrency, let workerConcurrency, partitionWorkerConcurrency > workerConcurrency {
            throw invalid(
                "partitionWorkerConcurrency (\(partitionWorkerConcurrency)) must not exceed workerConcurrency (\(workerConcurrency))"
            )
        }
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
    /// The partition of a partitioned queue this workflow belongs to (e.g. a tenant or user ID); required on
    /// a partitioned queue and refused on any other. See ``WorkflowQueue/isPartitioned``.
    public var partitionKey: String?

    /// Creates options.
    public init(
        id: String? = nil, priority: Int = 0, deduplicationID: String? = nil,
        deduplicationPolicy: DeduplicationPolicy = .reject, delay: Duration? = nil, timeout: Duration? = nil,
        partitionKey: String? = nil
    ) {
        self.id = id
        self.partitionKey = partitionKey
        self.priority = priority
        self.deduplicationID = deduplicationID
        self.deduplicationPolicy = deduplicationPolicy
        self.delay = delay
        self.timeout = timeout
    }
}

/// One partition of a partitioned queue: the unit the per-partition limits count.
struct QueuePartition: Sendable, Hashable {
    var queue: String
    var key: String

    /// The partition a run counts against: none unless it came from a queue with a partition key.
    static func of(queue: String?, key: String?) -> QueuePartition? {
        guard let queue, let key else { return nil }
        return QueuePartition(queue: queue, key: key)
    }
}
