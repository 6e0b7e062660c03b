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
    private struct LocalRun {
        let task: Task<RunOutcome, Never>
        let token: String
    }

    private struct State {
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

    private let state = Mutex(State())
    /// Runs ended at a long sleep, waiting to be launched again.
    let parked = ParkedRuns()
    /// DurableTesting's watches on runs (see ``RunWatch``); empty in applications.
    let watches: RunWatches

    init(configuration: DurableConfiguration, database: SystemDatabase, registry: WorkflowRegistry, listener: NotificationListener, queues: [WorkflowQueue] = [],
         tracksInstances: Bool = false, watches: RunWatches = RunWatches(), logger: Logger) {
        self.tracksInstances = tracksInstances
        self.watches = watches
        var declared = Dictionary(queues.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        declared[WorkflowQueue.internalQueueName] = declared[WorkflowQueue.internalQueueName] ?? WorkflowQueue(WorkflowQueue.internalQueueName)
        self.declaredQueues = declared
        self.configuration = configuration
        self.database = database
        // An eighth of the pool per kind of write before batching starts (measured best on two cores: fewer,
        // fuller commits), and the rest of the pool stays free for everything else.
        self.checkpoints = CheckpointWriter(database: database, parallelWrites: max(2, configuration.maxConnections / 8))
        self.registry = registry
        self.listener = listener
        self.logger = logger
        listener.onCancellation { [weak self] id in self?.cancellationAnnounced(id) }
    }

    // MARK: - Starting

    /// Starts a workflow or finds the run that already holds `id`.
    func start(name: String, input: String, id: String, timeout: Duration? = nil, parentDeadline: Int64? = nil, parentID: String? = nil) async throws {
        try ensureAccepting()
        guard let registration = registry[name] else {
            throw DurableError(.workflowNotRegistered, "no workflow named '\(name)' is registered; call DurableRuntime.register(_:) before launch", workflowID: id)
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
        logger.debug("workflow already exists; returning its handle", metadata: ["workflow": "\(id)", "status": "\(outcome.status)"])
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

    private func ensureAccepting() throws {
        guard state.withLock({ $0.accepting }) else {
            throw DurableError(.notRunning, "the durable runtime is shutting down and takes no new work")
        }
    }

    // MARK: - Running

    /// Runs a workflow body in its own task, and records its outcome.
    ///
    /// - Parameter holdsLoad: the run is a parked one waking up, whose queue slot is still counted.
    /// - Returns: false when it was not started: the runtime is shutting down, or a run of the workflow is here.
    @discardableResult
    func startRun(_ registration: WorkflowRegistration, id: String, input: String, token: String, recorded: [Int: RecordedStep], deadline: Int64? = nil, queue: String? = nil, partitionKey: String? = nil, holdsLoad: Bool = false) -> Bool {
        let partition = QueuePartition.of(queue: queue, key: partitionKey)
        let launched = state.withLock { current -> Bool in
            // After shutdown began, a claimed workflow is not started: it stays PENDING under this executor and is
            // recovered on the next start.
            guard current.accepting, current.runs[id] == nil else { return false }
            if !holdsLoad {
                if let queue { current.queueLoad[queue, default: 0] += 1 }
                if let partition { current.partitionLoad[partition, default: 0] += 1 }
            }
            // The task removes itself when done; it cannot get there before this lock is released.
            current.runs[id] = LocalRun(task: Task { [self] in
                let timer = deadline.map { deadline in
                    Task { [self] in
                        let remaining = Double(deadline - WorkflowContext.nowMilliseconds()) / 1000
                        if remaining > 0 { try? await Task.sleep(for: .milliseconds(Int64(remaining * 1000))) }
                        guard !Task.isCancelled else { return }
                        await self.timeOut(id, token: token)
                    }
                }
                let outcome = await execute(registration, id: id, input: input, token: token, recorded: recorded, deadline: deadline)
                timer?.cancel()
                var parkedEntry: ParkedRuns.Entry?
                if case .parked(let wakeTime) = outcome {
                    parkedEntry = ParkedRuns.Entry(
                        id: id, registration: registration, input: input, token: token, deadline: deadline,
                        queue: queue, partitionKey: partitionKey, wakeTime: wakeTime
                    )
                }
                // Leaving `runs` and entering the parked set happen under one lock, the one `stopLocalRun` holds
                // to look in both: a cancel finds the workflow in one or the other, never in neither.
                let (parked, replaced) = self.state.withLock { current -> (Bool, ParkedRuns.Entry?) in
                    current.runs.removeValue(forKey: id)
                    guard let parkedEntry, current.accepting, !Task.isCancelled else { return (false, nil) }
                    return (true, self.parked.add(parkedEntry))
                }
                // An entry of an older run it replaced lost the workflow to this run; its slot goes.
                if let replaced { self.releaseLoad(of: replaced) }
                if parked {
                    // The queue slot stays taken while it sleeps, as it would for a sleeper kept in memory.
                    self.startParking(id: id, wakeTime: parkedEntry?.wakeTime ?? 0)
                } else {
                    self.releaseLoad(queue: queue, partition: partition)
                }
                return outcome
            }, token: token)
            return true
        }
        if !launched, holdsLoad { releaseLoad(queue: queue, partition: partition) }
        return launched
    }

    /// Frees a run's queue slot and lets the dispatcher fill it.
    private func releaseLoad(queue: String?, partition: QueuePartition?) {
        guard let queue else { return }
        let wake = state.withLock { current -> (@Sendable () -> Void)? in
            current.queueLoad[queue, default: 1] -= 1
            if let partition {
                let remaining = (current.partitionLoad[partition] ?? 1) - 1
                current.partitionLoad[partition] = remaining > 0 ? remaining : nil
            }
            return current.onQueueCapacity
        }
        wake?()
    }

    private func releaseLoad(of entry: ParkedRuns.Entry) {
        releaseLoad(queue: entry.queue, partition: QueuePartition.of(queue: entry.queue, key: entry.partitionKey))
    }

    // MARK: - Parking

    /// Makes sure parked runs are woken (the loop starts with the first one parked).
    private func startParking(id: String, wakeTime: Double) {
        parked.start { [weak self] due in await self?.wakeParked(due) }
        logger.debug("workflow parked until it wakes", metadata: ["workflow": "\(id)", "wakeTime": "\(wakeTime)"])
    }

    /// Launches parked runs that came due again, from their checkpoints; those whose deadline passed are
    /// cancelled, and those no longer this run's (cancelled, resumed or taken over meanwhile) are dropped.
    private func wakeParked(_ due: [ParkedRuns.Entry]) async {
        let now = WorkflowContext.nowMilliseconds()
        var waking: [ParkedRuns.Entry] = []
        for entry in due {
            if let deadline = entry.deadline, deadline <= now {
                guard parked.finishWaking(entry.id) else { continue }
                await timeOut(entry.id, token: entry.token)
                releaseLoad(of: entry)
            } else {
                waking.append(entry)
            }
        }
        guard !waking.isEmpty else { return }
        do {
            let owned = try await database.stillOwned(waking.map(\.id), tokens: waking.map(\.token))
            let steps = owned.isEmpty ? [:] : try await database.loadSteps(workflowIDs: Array(owned), limit: configuration.maxPayloadBytes)
            for entry in waking {
                // Cancelled or resumed while the checks above ran: whoever took it out released its slot.
                guard parked.finishWaking(entry.id) else { continue }
                guard owned.contains(entry.id) else {
                    logger.debug("parked workflow is no longer this run's; dropped", metadata: ["workflow": "\(entry.id)"])
                    releaseLoad(of: entry)
                    continue
                }
                startRun(entry.registration, id: entry.id, input: entry.input, token: entry.token, recorded: steps[entry.id] ?? [:],
                       deadline: entry.deadline, queue: entry.queue, partitionKey: entry.partitionKey, holdsLoad: true)
            }
        } catch {
            // The database is unreachable past the reconnect timeout: try again shortly; nothing was launched.
            logger.warning("could not wake parked workflows; retrying", metadata: ["count": "\(waking.count)", "error": "\(error)"])
            for var entry in waking where parked.finishWaking(entry.id) {
                entry.wakeTime = Date().timeIntervalSince1970 + 1
                parked.add(entry)
            }
        }
    }

    private func execute(_ registration: WorkflowRegistration, id: String, input: String, token: String, recorded: [Int: RecordedStep], deadline: Int64?) async -> RunOutcome {
        // nil for every run but one a DurableTesting crash test watches (see RunWatch).
        let watch = watches.take(id)
        let context = WorkflowContext(workflowID: id, workflowName: registration.name, ownerToken: token, engine: self, recorded: recorded, deadline: deadline,
                                      crashAfterStep: watch?.crashAfterStep)
        let outcome = await execute(registration, context: context, input: input, token: token, recorded: recorded)
        if let watch {
            let ending: RunReport.Ending
            switch outcome {
            case .succeeded: ending = .succeeded
            case .failed: ending = .failed
            case .parked: ending = .parked
            case .interrupted: ending = context.stoppedBySimulatedCrash ? .crashed : .interrupted
            }
            watch.onEnd(RunReport(ending: ending, stepsTaken: context.lastStepNumber, recordedBefore: recorded.keys.sorted()))
        }
        return outcome
    }

    private func execute(_ registration: WorkflowRegistration, context: WorkflowContext, input: String, token: String, recorded: [Int: RecordedStep]) async -> RunOutcome {
        let id = context.workflowID
        let logger = self.logger.with(workflow: id, name: registration.name)
        logger.debug("workflow running", metadata: ["replaying": "\(!recorded.isEmpty)"])
        let result: Result<String, any Error>
        do {
            result = .success(try await registration.run(context, input, configuration.maxPayloadBytes))
        } catch {
            result = .failure(error)
        }

        if context.crashAfterStep != nil {
            // DurableTesting's simulated crash: the run stops as if the process had died here, writing nothing more.
            // A body that ended on its own (not interrupted) is stopped before its outcome is recorded once it has
            // completed the operations the crash comes after.
            var interrupted = Task.isCancelled || context.stoppedAtDeadline
            if case .failure(let error) = result, error is RunInterrupted { interrupted = true }
            if context.stoppedBySimulatedCrash || (!interrupted && context.crashesBeforeOutcome()) {
                logger.debug("run stopped by a simulated crash", metadata: ["afterStep": "\(context.crashAfterStep ?? 0)"])
                return .interrupted
            }
        }
        if context.fatal == nil, context.stoppedAtDeadline {
            // Whatever the body did after that (it may have caught the error and returned), the workflow is
            // cancelled as of its deadline; the timer may not have recorded that yet, or at all.
            await timeOut(id, token: token)
            return .interrupted
        }
        if context.fatal == nil, let wakeTime = context.parkedWakeTime {
            // Whatever the body did after the park (it may have caught the error), the run ends here.
            logger.debug("run parked at a long sleep")
            return .parked(until: wakeTime)
        }
        let failure: PortableError
        switch result {
        case .success(let output):
            if let fatal = context.fatal {
                failure = PortableError(describing: fatal)
            } else {
                return await finish(id: id, token: token, as: .success, output: output, logger: logger) ? .succeeded(output: output) : await adoptRecordedOutcome(id)
            }
        case .failure(let error):
            if let interrupted = error as? RunInterrupted {
                logger.info("run stopped: \(interrupted.reason)")
                return await adoptRecordedOutcome(id)
            }
            if Task.isCancelled, context.fatal == nil {
                if state.withLock({ $0.accepting }) {
                    logger.info("run stopped: its workflow was cancelled, or is no longer this run's")
                } else {
                    logger.info("run interrupted by shutdown; the workflow stays PENDING for recovery")
                }
                return .interrupted
            }
            if let durable = error as? DurableError, durable.code == .workflowCancelled {
                logger.info("workflow cancelled")
                return .interrupted
            }
            failure = PortableError(describing: context.fatal ?? error)
        }
        let encoded: String
        do {
            encoded = try PortableJSON.encode(failure, limit: configuration.maxPayloadBytes, what: "the workflow's error")
        } catch {
            encoded = (try? PortableJSON.encode(PortableError(name: failure.name, message: "(error message too large to record)"), limit: configuration.maxPayloadBytes, what: "the workflow's error")) ?? "{}"
        }
        logger.info("workflow failed", metadata: ["error": "\(failure.name)"])
        return await finish(id: id, token: token, as: .error, error: encoded, logger: logger) ? .failed(failure) : await adoptRecordedOutcome(id)
    }

    /// Records the outcome; false when the workflow was no longer this run's to finish.
    private func finish(id: String, token: String, as status: WorkflowState, output: String? = nil, error: String? = nil, logger: Logger) async -> Bool {
        do {
            let recorded = try await checkpoints.finish(WorkflowOutcomeWrite(id: id, token: token, status: status, output: output, error: error))
            if recorded { logger.debug("workflow finished", metadata: ["status": "\(status.rawValue)"]) }
            return recorded
        } catch {
            // The database stayed unreachable past the reconnect timeout, or we are shutting down: the workflow
            // stays PENDING and is recovered on the next start.
            logger.error("could not record the workflow outcome; it stays PENDING for recovery", metadata: ["error": "\(error)"])
            return false
        }
    }

    /// After a run could not record its own outcome, reports whatever outcome the database holds.
    private func adoptRecordedOutcome(_ id: String) async -> RunOutcome {
        guard let row = try? await database.workflowRow(id: id, payloadLimit: configuration.maxPayloadBytes) else { return .interrupted }
        switch WorkflowState(rawValue: row.status) {
        case .success?: return row.output.map { .succeeded(output: $0) } ?? .interrupted
        case .error?:
            let failure = row.error.flatMap { try? PortableJSON.decode(PortableError.self, from: $0, what: "the workflow's error") }
            return failure.map { .failed($0) } ?? .interrupted
        default: return .interrupted
        }
    }

    // MARK: - Cancellation

    /// Cancels a workflow durably (any process running it stops at its next durable operation, and a sleeping or
    /// waiting one is woken), unless it already finished.
    /// - Returns: false when no workflow has this ID.
    @discardableResult
    func cancel(_ id: String) async throws -> Bool {
        // The run to stop is the one here now: a run that a concurrent resume starts while the cancel is being
        // written must go on (the NOTIFY covers a run that appears meanwhile and loses the workflow).
        let token = localToken(of: id)
        let outcome = try await database.cancel(id: id)
        if let token { stopLocalRun(id, token: token) }
        return outcome.status != nil
    }

    /// The owner token of this process's run of `id`, running or parked.
    func localToken(of id: String) -> String? {
        state.withLock { $0.runs[id]?.token } ?? parked.token(of: id)
    }

    /// Interrupts this process's run of `id`, if any (only if it holds the workflow with `token`, when given);
    /// it stops at its next durable operation.
    func stopLocalRun(_ id: String, token: String? = nil) {
        stopLocalRun(id, ifOwnedUnder: { token == nil || $0 == token })
    }

    /// Interrupts this process's run of `id` and drops its parked entry (releasing its queue slot), each only if
    /// its owner token passes `ownedUnder`; returns the interrupted run.
    @discardableResult
    private func stopLocalRun(_ id: String, ifOwnedUnder ownedUnder: (String) -> Bool) -> Task<RunOutcome, Never>? {
        // Both looked at under the engine's lock, which a run ending at a park holds while it moves from one to the
        // other (see `launch`).
        let (run, entry) = state.withLock { current -> (Task<RunOutcome, Never>?, ParkedRuns.Entry?) in
            let run = current.runs[id].flatMap { ownedUnder($0.token) ? $0.task : nil }
            return (run, parked.remove(id, ifOwnedUnder: ownedUnder))
        }
        run?.cancel()
        if let entry { releaseLoad(of: entry) }
        return run
    }

    /// Stops the local runs whose workflow the database no longer shows as theirs: cancelled by a tool that sends
    /// no notification (DBOS's CLI and client), or requeued or claimed elsewhere while this process was paused.
    /// A notification stops most such runs at once and every checkpoint write finds out; this sweep, made with
    /// each heartbeat, catches a run that is waiting (a `recv`, a sleep, a long step) or parked holding a queue
    /// slot, which would otherwise hold that slot until it next looked. (Other parked entries, possibly many
    /// thousands, are left to the check they get when they wake.) An unreadable check leaves every run alone.
    func stopRunsNoLongerOwned() async {
        let local = state.withLock { $0.runs.map { (id: $0.key, token: $0.value.token) } } + parked.queuedTokens
        guard !local.isEmpty, let owned = try? await database.stillOwned(local.map(\.id), tokens: local.map(\.token)) else { return }
        for run in local where !owned.contains(run.id) {
            logger.debug("a run's workflow is no longer its own; stopping it", metadata: ["workflow": "\(run.id)"])
            stopLocalRun(run.id, token: run.token)
        }
    }

    /// Clears what this process still holds of a workflow it has just claimed under `token` under an older token:
    /// a run or a parked entry left from before this executor was judged silent (paused, or restarted before its
    /// first heartbeat) and the workflow was requeued or claimed, and now claimed back here. Those lost the
    /// workflow. The parked entry is dropped and its queue slot released; the run is cancelled and returned, so
    /// the new run is launched only once it has ended (`startRun` refuses a second run of one workflow).
    func clearStaleLocalRun(_ id: String, claimedUnder token: String) -> Task<RunOutcome, Never>? {
        stopLocalRun(id, ifOwnedUnder: { $0 != token })
    }

    /// Starts a run of a workflow this process has just claimed under `token` (by recovery, a takeover, a queue or `resume`).
    /// An older run or parked entry of the workflow still here lost it to this claim and is retired first; the
    /// launch then waits for that run to end, checks that the claim still holds (a cancel or a resume may have
    /// come meanwhile) and reloads the checkpoints (the old run may have recorded a step since they were read).
    func startClaimedRun(_ registration: WorkflowRegistration, id: String, input: String, token: String, recorded: [Int: RecordedStep],
                       deadline: Int64?, queue: String?, partitionKey: String?) {
        if clearStaleLocalRun(id, claimedUnder: token) == nil,
           startRun(registration, id: id, input: input, token: token, recorded: recorded, deadline: deadline, queue: queue, partitionKey: partitionKey) {
            return
        }
        guard state.withLock({ $0.accepting }) else { return }  // shutting down: it stays PENDING for the next start
        logger.warning("claimed a workflow an older run here still held; it runs once that run has stopped", metadata: ["workflow": "\(id)"])
        Task { [self] in
            await startRunOnceStaleRunsEnd(registration, id: id, input: input, token: token, deadline: deadline, queue: queue, partitionKey: partitionKey)
        }
    }

    private func startRunOnceStaleRunsEnd(_ registration: WorkflowRegistration, id: String, input: String, token: String,
                                        deadline: Int64?, queue: String?, partitionKey: String?) async {
        let logger = self.logger.with(workflow: id, name: registration.name)
        for _ in 0..<5 {
            while let stale = clearStaleLocalRun(id, claimedUnder: token) { _ = await stale.value }
            do {
                guard try await database.stillOwned([id], tokens: [token]).contains(id) else {
                    logger.debug("the claimed workflow was cancelled or taken meanwhile; not launched")
                    return
                }
                let steps = try await database.loadSteps(workflowIDs: [id], limit: configuration.maxPayloadBytes)
                if startRun(registration, id: id, input: input, token: token, recorded: steps[id] ?? [:],
                          deadline: deadline, queue: queue, partitionKey: partitionKey) {
                    return
                }
            } catch {
                logger.error("could not launch a claimed workflow; it stays PENDING until this executor restarts or is taken over", metadata: ["error": "\(error)"])
                return
            }
            guard state.withLock({ $0.accepting }) else { return }
        }
        logger.error("could not launch a claimed workflow: another run of it kept appearing here; it stays PENDING until this executor restarts")
    }

    /// A cancellation announced by NOTIFY (from this process or another). It may be stale: the workflow can have
    /// been resumed since, even here, and the resumed run must go on. So a local run is stopped only once the
    /// database shows that it no longer owns the workflow.
    private func cancellationAnnounced(_ id: String) {
        guard let token = localToken(of: id) else { return }
        Task { [self] in
            // Unreadable: leave the run alone. Stopping it could strand a workflow it still owns (nothing in a live
            // process would run it again), while a run that lost it finds out at its next checkpoint write.
            guard let owned = try? await database.stillOwned([id], tokens: [token]) else { return }
            if !owned.contains(id) { stopLocalRun(id, token: token) }
        }
    }

    /// The deadline passed: the workflow is cancelled, as DBOS does.
    ///
    /// Only the run that owns the workflow (`token`) cancels it: a run still winding down here after the workflow
    /// was cancelled and resumed elsewhere (say its step body ignores cancellation) must not cancel the new run.
    private func timeOut(_ id: String, token: String) async {
        do {
            if try await database.cancel(id: id, onlyIfOwnedBy: token).cancelled {
                logger.info("workflow timed out and is cancelled", metadata: ["workflow": "\(id)"])
            } else {
                logger.debug("deadline passed for a run that no longer owns its workflow; left alone", metadata: ["workflow": "\(id)"])
            }
            stopLocalRun(id, token: token)
        } catch {
            // The database stayed unreachable past the reconnect timeout. The run stops here and the workflow stays
            // PENDING until it is recovered (this executor's next start, or a takeover), which cancels it then: its
            // deadline is in the row.
            logger.error("could not record the timeout", metadata: ["workflow": "\(id)", "error": "\(error)"])
            stopLocalRun(id, token: token)
        }
    }

    /// Runs a cancelled (or stuck) workflow again from its last checkpoint, in this process.
    func resume(_ id: String) async throws {
        guard let existing = try await database.existingWorkflow(id: id) else {
            throw DurableError(.workflowNotFound, "no workflow with this ID exists", workflowID: id)
        }
        guard let name = existing.name, let registration = registry[name] else {
            throw DurableError(.workflowNotRegistered, "workflow '\(existing.name ?? "<none>")' is not registered in this process, so it cannot be resumed here", workflowID: id)
        }
        // A run of it still winding down here (for example after a cancel) must finish first; a parked one is
        // replaced by the resumed run.
        if let previous = activeRun(id) { _ = await previous.value }
        if let entry = parked.remove(id) { releaseLoad(of: entry) }
        let token = newRunToken()
        guard let claimed = try await database.resume(
            id: id, token: token, executorID: configuration.executorID,
            applicationVersion: configuration.applicationVersion, payloadLimit: configuration.maxPayloadBytes
        ) else {
            return  // it finished meanwhile: nothing to resume
        }
        guard let input = claimed.input else {
            throw DurableError(.payloadTooLarge, "the recorded input is \(claimed.inputBytes) bytes, above DurableConfiguration.maxPayloadBytes", workflowID: id)
        }
        let steps = try await database.loadSteps(workflowIDs: [id], limit: configuration.maxPayloadBytes)
        // Through startClaimedRun: a run of it may have appeared here meanwhile (a claim that took it back), and it
        // lost the workflow to this resume.
        startClaimedRun(registration, id: id, input: input, token: token, recorded: steps[id] ?? [:], deadline: nil, queue: nil, partitionKey: nil)
    }

    static func milliseconds(_ duration: Duration) -> Int64 {
        duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
    }

    // MARK: - Shutdown

    /// Stops taking work and interrupts every active run; each stops at its next durable operation and stays
    /// `PENDING`. Returns once they have all stopped.
    func shutdown() async {
        let (runs, dispatcher, monitor, scheduler) = state.withLock { state -> ([Task<RunOutcome, Never>], QueueDispatcher?, ExecutorMonitor?, Scheduler?) in
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
