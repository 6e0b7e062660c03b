import Foundation
import LibPQ
import Logging
import ServiceLifecycle
import Synchronization

/// The durable-execution runtime: register workflows, launch, start them, and it keeps them alive across crashes.
///
/// ```swift
/// let durable = DurableRuntime(configuration: .init(databaseURL: url), logger: logger)
/// durable.register(BookTrip(airline: airline))
/// // Beside an HTTP server: ServiceGroup(services: [durable, app], ...) — or: try await durable.run()
/// let handle = try await durable.start(BookTrip.self, trip, id: "trip-\(trip.id)")
/// let itinerary = try await handle.result()
/// ```
///
/// Launching (``launch()``, or ``run()``, or the first ``start(_:_:id:timeout:)``) opens the connection pool, creates
/// the system schema if needed, and resumes this executor's `PENDING` workflows from their last checkpoints.
/// As a swift-service-lifecycle `Service`, it stops taking work on graceful shutdown; unfinished workflows stay
/// `PENDING` and are resumed by the next start.
public final class DurableRuntime: Service, Sendable {
    /// The configuration it was created with.
    public let configuration: DurableConfiguration
    let logger: Logger
    let registry = WorkflowRegistry()
    private let queues = Mutex<[WorkflowQueue]>([])
    let schedules = Mutex<[WorkflowSchedule]>([])
    /// DurableTesting's watches on runs (see ``RunWatch``); empty in applications.
    private let watches = RunWatches()

    private enum Phase {
        case idle
        case launching(Task<WorkflowEngine, any Error>)
        case running(WorkflowEngine)
        case stopped
    }

    private struct State {
        var phase = Phase.idle
        var pool: ConnectionPool?
        var stopWaiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    /// Creates a runtime. Nothing connects until launch.
    /// - Parameters:
    ///   - configuration: the database and the runtime's settings.
    ///   - logger: where the runtime logs; the library never prints.
    public init(configuration: DurableConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    /// Registers a workflow under its durable name. Register every workflow before launch, so recovery finds
    /// their code. A mistake (an empty or duplicate name) makes ``launch()`` throw.
    public func register<W: Workflow>(_ workflow: W) {
        registry.register(workflow)
    }

    /// Declares a queue. Declare every queue this process enqueues onto or serves, before launch.
    public func register(queue: WorkflowQueue) {
        queues.withLock { $0.append(queue) }
    }

    func addSchedule(_ schedule: WorkflowSchedule) {
        schedules.withLock { $0.append(schedule) }
    }

    // MARK: - Lifecycle

    /// Connects, prepares the schema and resumes pending workflows. Safe to call more than once; later calls
    /// wait for the first.
    public func launch() async throws {
        _ = try await launchedEngine()
    }

    /// Runs the runtime as a `Service`: launches, then waits until graceful shutdown (or cancellation, or
    /// ``shutdown()``), then stops taking work and interrupts running workflows, which stay `PENDING`.
    public func run() async throws {
        try await launch()
        await withGracefulShutdownHandler {
            await withTaskCancellationHandler {
                await waitUntilStopped()
            } onCancel: {
                Task { await self.shutdown() }
            }
        } onGracefulShutdown: {
            Task { await self.shutdown() }
        }
    }

    /// Stops taking work, interrupts running workflows (they stay `PENDING` for the next start) and closes the
    /// connection pool. Safe to call more than once.
    public func shutdown() async {
        let (previous, pool) = state.withLock { state -> (Phase, ConnectionPool?) in
            let previous = state.phase
            state.phase = .stopped
            return (previous, state.pool)
        }
        switch previous {
        case .running(let engine):
            await engine.shutdown()
        case .launching(let task):
            task.cancel()
            if let engine = try? await task.value { await engine.shutdown() }
        case .idle, .stopped:
            break
        }
        await pool?.close()
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            defer { state.stopWaiters = [] }
            return state.stopWaiters
        }
        waiters.forEach { $0.resume() }
        if case .running = previous { logger.info("durable runtime stopped") }
    }

    // MARK: - Workflows

    /// Starts a workflow, or returns the run that already holds `id`.
    ///
    /// The same ID started again — from this process or another, before or after it finished — returns a
    /// handle to the same run, and its body runs once. The same ID under a different workflow name throws
    /// ``DurableError/Code/conflictingWorkflowID``.
    ///
    /// - Parameters:
    ///   - workflow: the registered workflow type.
    ///   - input: the workflow's input, recorded as portable JSON.
    ///   - id: the workflow ID and idempotency key; a random UUID when omitted.
    ///   - timeout: when set, the workflow is cancelled this long after it starts, wherever it runs; its
    ///     children inherit the deadline.
    public func start<W: Workflow>(_ workflow: W.Type, _ input: W.Input, id: String? = nil, timeout: Duration? = nil)
        async throws -> WorkflowHandle<W.Output>
    {
        let id = id ?? UUID().uuidString.lowercased()
        try Self.validateWorkflowID(id)
        try Self.validateTimeout(timeout)
        try requireWorker(toRun: "start")
        let engine = try await launchedEngine()
        let encoded = try PortableJSON.encodeInput(input, limit: configuration.maxPayloadBytes)
        try await engine.start(name: W.name, input: encoded, id: id, timeout: timeout)
        return WorkflowHandle(id: id, runtime: self)
    }

    /// Cancels a workflow from any process: it becomes `CANCELLED`, and the process running it stops it at its
    /// next durable operation, waking it if it sleeps or waits. A finished workflow is left as it is.
    /// - Throws: ``DurableError/Code/workflowNotFound`` if no workflow has this ID.
    public func cancel(_ id: String) async throws {
        let engine = try await launchedEngine()
        guard try await engine.cancel(id) else {
            throw DurableError(.workflowNotFound, "no workflow with this ID exists", workflowID: id)
        }
    }

    /// Runs a cancelled (or otherwise unfinished) workflow again in this process, from its last checkpoint.
    /// A finished workflow is left as it is.
    /// - Throws: ``DurableError/Code/workflowNotFound``, or ``DurableError/Code/workflowNotRegistered`` when
    ///   its code is not registered in this process.
    public func resume(_ id: String) async throws {
        try requireWorker(toRun: "resume")
        let engine = try await launchedEngine()
        try await engine.resume(id)
    }

    /// A handle to an existing workflow, by ID, from any process, typed by its output.
    public func handle<Output: Codable & Sendable>(for id: String, resultType: Output.Type = Output.self)
        -> WorkflowHandle<Output>
    {
        WorkflowHandle(id: id, runtime: self)
    }

    /// A handle to an existing workflow, by ID, from any process, typed by its workflow: `handle(for: id, of:
    /// BookTrip.self)` awaits a `BookTrip.Output`. (The ID is not checked against the workflow's name here; a
    /// result that does not decode as that output throws ``DurableError/Code/corruptedCheckpoint``.)
    public func handle<W: Workflow>(for id: String, of workflow: W.Type) -> WorkflowHandle<W.Output> {
        WorkflowHandle(id: id, runtime: self)
    }

    /// The status of a workflow, or nil when no workflow has this ID.
    public func status(of id: String) async throws -> WorkflowStatus? {
        let engine = try await launchedEngine()
        return try await engine.database.workflowRow(id: id, payloadLimit: 0).map(WorkflowStatus.init)
    }

    // MARK: - For DurableTesting

    // Package access, not public: DurableTesting (a target of this package) builds its crash tests on these two;
    // applications never see them. See RunWatch.swift for why the engine needs a hook at all.

    /// A new runtime, not launched, with `configuration`, this runtime's logger, and the workflows and queues
    /// registered here so far (not its schedules: a crash test's runtimes must not fire them).
    package func sibling(configuration: DurableConfiguration) -> DurableRuntime {
        let sibling = DurableRuntime(configuration: configuration, logger: logger)
        registry.copy(into: sibling.registry)
        let declared = queues.withLock { $0 }
        sibling.queues.withLock { $0 = declared }
        return sibling
    }

    /// Arms `watch` for the next run of `workflowID` in this runtime (arm before launch to watch a run that
    /// recovery starts). It applies once, and replaces a watch armed earlier for that ID.
    package func watchNextRun(of workflowID: String, _ watch: RunWatch) {
        watches.arm(workflowID, watch)
    }

    // MARK: - Internals

    func launchedEngine() async throws -> WorkflowEngine {
        enum Next {
            case ready(WorkflowEngine)
            case wait(Task<WorkflowEngine, any Error>)
            case stopped
        }
        let next: Next = state.withLock { state in
            switch state.phase {
            case .running(let engine): return .ready(engine)
            case .launching(let task): return .wait(task)
            case .stopped: return .stopped
            case .idle:
                let task = Task { try await self.bringUp() }
                state.phase = .launching(task)
                return .wait(task)
            }
        }
        switch next {
        case .ready(let engine): return engine
        case .stopped: throw DurableError(.notRunning, "the durable runtime has been shut down")
        case .wait(let task):
            do {
                return try await task.value
            } catch {
                // Let a later call try again (for example once the database is reachable).
                state.withLock { state in
                    if case .launching = state.phase { state.phase = .idle }
                }
                throw error
            }
        }
    }

    private func bringUp() async throws -> WorkflowEngine {
        try configuration.validate()
        try registry.validate()
        let declaredQueues = queues.withLock { $0 }
        for queue in declaredQueues { try queue.validate() }
        if Set(declaredQueues.map(\.name)).count != declaredQueues.count {
            throw DurableError(.invalidConfiguration, "a queue name is declared twice")
        }
        let connections = PGConfiguration(
            connectionString: ConnectionString(configuration.databaseURL),
            connectTimeoutSeconds: Int(configuration.connectTimeout.components.seconds),
            applicationName: "durable:\(configuration.executorID)",
            usePreparedStatements: configuration.usePreparedStatements
        )
        let pool = ConnectionPool(
            configuration: connections,
            maxConnections: configuration.maxConnections,
            acquireTimeout: configuration.connectionAcquireTimeout,
            logger: logger
        )
        var startedListener: NotificationListener?
        var createdEngine: WorkflowEngine?
        do {
            logger.info(
                "durable runtime launching",
                metadata: [
                    "database": "\(ConnectionString(configuration.databaseURL).redacted)",
                    "schema": "\(configuration.schema)",
                    "executor": "\(configuration.executorID)",
                    "applicationVersion": "\(configuration.applicationVersion)",
                ])
            try await reachDatabase(pool)
            let retry = DatabaseRetry(timeout: configuration.reconnectTimeout, logger: logger)
            let ownTablesReady = try await retry.run("prepare the system schema") {
                try await SchemaMigrator(pool: pool, schema: configuration.schema, logger: logger).run(
                    autoMigrate: configuration.autoMigrate)
            }
            let database = SystemDatabase(pool: pool, schema: configuration.schema, retry: retry)
            try await database.registerApplicationVersion(configuration.applicationVersion)
            let listener = NotificationListener(
                configuration: connections, logger: logger, fallbackInterval: configuration.notificationFallbackInterval
            )
            startedListener = listener
            listener.start()
            if try await !database.hasMessageTrigger() {
                listener.messagesComeUnannounced()
                logger.warning(
                    "the notifications table has no trigger announcing new messages (DBOS built this schema with LISTEN/NOTIFY off?); waiting workflows look for messages every second instead"
                )
            }
            let isWorker = configuration.mode == .worker
            let engine = WorkflowEngine(
                configuration: configuration, database: database, registry: registry, listener: listener,
                queues: declaredQueues,
                tracksInstances: isWorker && ownTablesReady, watches: watches, logger: logger)
            createdEngine = engine
            for queue in declaredQueues where queue.name != WorkflowQueue.internalQueueName {
                try await database.registerQueue(queue)
            }
            if isWorker {
                try await startWorking(engine, registeredInDatabase: ownTablesReady)
            } else {
                logger.info(
                    "client mode: this runtime runs no workflows (no recovery, queues, schedules or heartbeats)")
            }
            let stillWanted = state.withLock { state -> Bool in
                guard case .launching = state.phase else { return false }
                state.phase = .running(engine)
                state.pool = pool
                return true
            }
            guard stillWanted else {
                throw DurableError(.notRunning, "the durable runtime was shut down while launching")
            }
            logger.info("durable runtime running")
            return engine
        } catch {
            // What launched before the failure stops (the engine's shutdown also gives the executor ID up).
            if let createdEngine { await createdEngine.shutdown() }
            await startedListener?.stop()
            await pool.close()
            throw error
        }
    }

    private func waitUntilStopped() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let alreadyStopped = state.withLock { state -> Bool in
                if case .stopped = state.phase { return true }
                state.stopWaiters.append(continuation)
                return false
            }
            if alreadyStopped { continuation.resume() }
        }
    }

    /// A client-mode runtime runs no workflow, so what would run one here is refused before anything is written.
    private func requireWorker(toRun verb: String) throws {
        guard configuration.mode == .client else { return }
        throw DurableError(
            .invalidConfiguration,
            "this runtime is in client mode (DurableConfiguration.mode = .client), which runs no workflows, so it cannot \(verb) one; enqueue it onto a queue that a worker serves, or \(verb) it from a worker"
        )
    }

    static func validateTimeout(_ timeout: Duration?) throws {
        guard let timeout else { return }
        if timeout <= .zero {
            throw DurableError(.invalidArgument, "workflow timeout must be positive (got \(timeout))")
        }
        if timeout > longestWait {
            throw DurableError(.invalidArgument, "workflow timeout \(timeout) is longer than ten years; check its unit")
        }
    }

    static func validateWorkflowID(_ id: String) throws {
        if id.isEmpty { throw DurableError(.invalidArgument, "workflow ID is empty") }
        try ArgumentChecks.text(id, "the workflow ID")
    }
}
