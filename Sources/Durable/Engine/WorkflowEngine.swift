import Foundation
import Logging
import Synchronization

/// How a run of a workflow body ended in this process.
enum RunOutcome: Sendable {
    /// The body returned; its encoded output was recorded.
    case succeeded(output: String)
    /// The body threw; the encoded error was recorded.
    case failed(PortableError)
    /// The run stopped without recording an outcome (shutdown, or another run owns the workflow now).
    case interrupted
    /// The run ended at a long sleep; the workflow is launched again here when it wakes (epoch seconds).
    case parked(until: Double)
}

/// Runs workflows: starts them, executes their bodies, records their outcomes and keeps track of the runs
/// active in this process.
final class WorkflowEngine: Sendable {
    let configuration: DurableConfiguration
    let database: SystemDatabase
    let checkpoints: CheckpointWriter
    let registry: WorkflowRegistry
    let listener: NotificationListener
    let logger: Logger
    /// The queues declared in this process, by name (the internal queue included).
    let declaredQueues: [String: WorkflowQueue]
    /// This runtime instance's identity in `durable_executor_instances`, and the first characters of every owner
    /// token its runs hold (see ``newRunToken()``).
    let instanceID = String(UUID().uuidString.lowercased().prefix(WorkflowEngine.instanceIDLength))
    /// Whether this instance records itself in `durable_executor_instances` (a worker whose schema has our
    /// migration 0003), so that owner tokens can be told live or dead.
    let tracksInstances: Bool

    /// A run in this process, and the owner token it holds the workflow with.
    struct LocalRun {
        let task: Task<RunOutcome, Never>
        let token: String
    }

    struct State {
        var runs: [String: LocalRun] = [:]
        /// Runs active in this process, per queue they were dequeued from (worker concurrency).
        var queueLoad: [String: Int] = [:]
        /// Runs active in this process, per partition of a partitioned queue (partition worker concurrency).
        var partitionLoad: [QueuePartition: Int] = [:]
        var onQueueCapacity: (@Sendable () -> Void)?
        var dispatcher: QueueDispatcher?
        var monitor: ExecutorMonitor?
        var scheduler: Scheduler?
        var accepting = true
    }

    let state = Mutex(State())
    /// Runs ended at a long sleep, waiting to be launched again.
    let parked = ParkedRuns()
    /// DurableTesting's watches on runs (see ``RunWatch``); empty in applications.
    let watches: RunWatches

    init(
        configuration: DurableConfiguration, database: SystemDatabase, registry: WorkflowRegistry,
        listener: NotificationListener, queues: [WorkflowQueue] = [],
        tracksInstances: Bool = false, watches: RunWatches = RunWatches(), logger: Logger
    ) {
        self.tracksInstances = tracksInstances
        self.watches = watches
        var declared = Dictionary(queues.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        declared[WorkflowQueue.internalQueueName] =
            declared[WorkflowQueue.internalQueueName] ?? WorkflowQueue(WorkflowQueue.internalQueueName)
        self.declaredQueues = declared
        self.configuration = configuration
        self.database = database
        // An eighth of the pool per kind of write before batching starts (measured best on two cores: fewer,
        // fuller commits), and the rest of the pool stays free for everything else.
        self.checkpoints = CheckpointWriter(
            database: database, parallelWrites: max(2, configuration.maxConnections / 8))
        self.registry = registry
        self.listener = listener
        self.logger = logger
        listener.onCancellation { [weak self] id in self?.cancellationAnnounced(id) }
    }

    // MARK: - Starting

    /// Starts a workflow or finds the run that already holds `id`.
    func start(
        name: String, input: String, id: String, timeout: Duration? = nil, parentDeadline: Int64? = nil,
        parentID: String? = nil
    ) async throws {
        try ensureAccepting()
        guard let registration = registry[name] else {
            throw DurableError(
                .workflowNotRegistered,
                "no workflow named '\(name)' is registered; call DurableRuntime.register(_:) before launch",
                workflowID: id)
        }
        // No shortcut when `id` is already running here: the row must still be read, or a start of the same ID
        // under another workflow name would return silently instead of throwing conflictingWorkflowID.
        // (The insert below conflicts and reads the existing row, so the body is still not run twice.)
        let token = newRunToken()
        let timeoutMilliseconds = timeout.map(Self.milliseconds)
        // An explicit timeout starts now; otherwise a child inherits its parent's deadline, as in DBOS.
        let deadline = timeoutMilliseconds.map { WorkflowContext.nowMilliseconds() + $0 } ?? parentDeadline
        let outcome = try await database.startWorkflow(
            id: id, name: name, input: input, token: token,
            executorID: configuration.executorID, applicationVersion: configuration.applicationVersion,
            timeoutMilliseconds: timeoutMilliseconds, deadlineMilliseconds: deadline, parentID: parentID
        )
        if outcome.created {
            startRun(registration, id: id, input: input, token: token, recorded: [:], deadline: deadline)
            return
        }
        if let existing = outcome.name, existing != name {
            throw DurableError(
                .conflictingWorkflowID,
                "workflow ID is already used by a workflow named '\(existing)', not '\(name)'; choose another ID",
                workflowID: id
            )
        }
        logger.debug(
            "workflow already exists; returning its handle",
            metadata: ["workflow": "\(id)", "status": "\(outcome.status)"])
    }

    /// The run of `id` active in this process, if any.
    func activeRun(_ id: String) -> Task<RunOutcome, Never>? {
        state.withLock { $0.runs[id]?.task }
    }

    /// Runs of `queue` active in this process.
    func load(of queue: String) -> Int {
        state.withLock { $0.queueLoad[queue] ?? 0 }
    }

    /// How many workflows of one partition of a queue run in this process now.
    func load(of partition: QueuePartition) -> Int {
        state.withLock { $0.partitionLoad[partition] ?? 0 }
    }

    /// Starts dispatching the queues this process serves.
    func startDispatching(_ queues: [WorkflowQueue]) {
        let dispatcher = QueueDispatcher(engine: self, queues: queues, workflowNames: registry.names)
        state.withLock { $0.dispatcher = dispatcher }
        dispatcher.start()
    }

    /// Starts the heartbeat and the takeover of silent executors' work.
    func startMonitoring() {
        let monitor = ExecutorMonitor(engine: self)
        state.withLock { $0.monitor = monitor }
        monitor.start()
    }

    /// Starts firing schedules.
    func startScheduling(_ schedules: [WorkflowSchedule]) async throws {
        let scheduler = Scheduler(engine: self, schedules: schedules)
        state.withLock { $0.scheduler = scheduler }
        try await scheduler.start()
    }

    /// Lets the dispatcher look at its queues now.
    func wakeDispatcher() {
        state.withLock { $0.dispatcher }?.wake()
    }

    /// Called whenever a queued run ends here, so the dispatcher can fill the freed slot at once.
    func onQueueCapacity(_ handler: @escaping @Sendable () -> Void) {
        state.withLock { $0.onQueueCapacity = handler }
    }

    func ensureAccepting() throws {
        guard state.withLock({ $0.accepting }) else {
            throw DurableError(.notRunning, "the durable runtime is shutting down and takes no new work")
        }
    }

    static func milliseconds(_ duration: Duration) -> Int64 {
        duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
    }

    // MARK: - Shutdown

    /// Stops taking work and interrupts every active run; each stops at its next durable operation and stays
    /// `PENDING`. Returns once they have all stopped.
    func shutdown() async {
        let (runs, dispatcher, monitor, scheduler) = state.withLock {
            state -> ([Task<RunOutcome, Never>], QueueDispatcher?, ExecutorMonitor?, Scheduler?) in
            state.accepting = false
            return (state.runs.values.map(\.task), state.dispatcher, state.monitor, state.scheduler)
        }
        // Interrupt running workflows first: stopping the background loops can take a while on a busy database,
        // and a workflow must not go on to finish in the meantime.
        for run in runs { run.cancel() }
        await scheduler?.stop()
        await monitor?.stop()
        await dispatcher?.stop()
        // Nothing new launches once `accepting` is off, but runs that were launching then are in the table now.
        let remaining = state.withLock { $0.runs.values.map(\.task) }
        for run in remaining { run.cancel() }
        for run in remaining { _ = await run.value }
        // Parked workflows stay PENDING under this executor, like interrupted ones, and are recovered on restart.
        await parked.stop()
        _ = parked.removeAll()
        await listener.stop()
        if tracksInstances { await releaseExecutorID() }
    }
}

extension Logger {
    func with(workflow id: String, name: String) -> Logger {
        var copy = self
        copy[metadataKey: "workflow"] = "\(id)"
        copy[metadataKey: "workflowName"] = "\(name)"
        return copy
    }
}
