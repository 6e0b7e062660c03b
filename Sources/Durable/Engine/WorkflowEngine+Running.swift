import Foundation
import Logging

/// Running workflow bodies: a run's task, its queue slot, parking at long sleeps and waking, and recording how the
/// body ended.
extension WorkflowEngine {
    // MARK: - Running

    /// Runs a workflow body in its own task, and records its outcome.
    ///
    /// - Parameter holdsLoad: the run is a parked one waking up, whose queue slot is still counted.
    /// - Returns: false when it was not started: the runtime is shutting down, or a run of the workflow is here.
    @discardableResult
    func startRun(
        _ registration: WorkflowRegistration, id: String, input: String, token: String, recorded: [Int: RecordedStep],
        deadline: Int64? = nil, queue: String? = nil, partitionKey: String? = nil, holdsLoad: Bool = false
    ) -> Bool {
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
            current.runs[id] = LocalRun(
                task: Task { [self] in
                    let timer = deadline.map { deadline in
                        Task { [self] in
                            let remaining = Double(deadline - WorkflowContext.nowMilliseconds()) / 1000
                            if remaining > 0 { try? await Task.sleep(for: .milliseconds(Int64(remaining * 1000))) }
                            guard !Task.isCancelled else { return }
                            await self.timeOut(id, token: token)
                        }
                    }
                    let outcome = await execute(
                        registration, id: id, input: input, token: token, recorded: recorded, deadline: deadline)
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
    func releaseLoad(queue: String?, partition: QueuePartition?) {
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

    func releaseLoad(of entry: ParkedRuns.Entry) {
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
            let steps =
                owned.isEmpty
                ? [:] : try await database.loadSteps(workflowIDs: Array(owned), limit: configuration.maxPayloadBytes)
            for entry in waking {
                // Cancelled or resumed while the checks above ran: whoever took it out released its slot.
                guard parked.finishWaking(entry.id) else { continue }
                guard owned.contains(entry.id) else {
                    logger.debug(
                        "parked workflow is no longer this run's; dropped", metadata: ["workflow": "\(entry.id)"])
                    releaseLoad(of: entry)
                    continue
                }
                startRun(
                    entry.registration, id: entry.id, input: entry.input, token: entry.token,
                    recorded: steps[entry.id] ?? [:],
                    deadline: entry.deadline, queue: entry.queue, partitionKey: entry.partitionKey, holdsLoad: true)
            }
        } catch {
            // The database is unreachable past the reconnect timeout: try again shortly; nothing was launched.
            logger.warning(
                "could not wake parked workflows; retrying",
                metadata: ["count": "\(waking.count)", "error": "\(error)"])
            for var entry in waking where parked.finishWaking(entry.id) {
                entry.wakeTime = Date().timeIntervalSince1970 + 1
                parked.add(entry)
            }
        }
    }

    private func execute(
        _ registration: WorkflowRegistration, id: String, input: String, token: String, recorded: [Int: RecordedStep],
        deadline: Int64?
    ) async -> RunOutcome {
        // nil for every run but one a DurableTesting crash test watches (see RunWatch).
        let watch = watches.take(id)
        let context = WorkflowContext(
            workflowID: id, workflowName: registration.name, ownerToken: token, engine: self, recorded: recorded,
            deadline: deadline,
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
            watch.onEnd(
                RunReport(ending: ending, stepsTaken: context.lastStepNumber, recordedBefore: recorded.keys.sorted()))
        }
        return outcome
    }

    private func execute(
        _ registration: WorkflowRegistration, context: WorkflowContext, input: String, token: String,
        recorded: [Int: RecordedStep]
    ) async -> RunOutcome {
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
                logger.debug(
                    "run stopped by a simulated crash", metadata: ["afterStep": "\(context.crashAfterStep ?? 0)"])
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
                return await finish(id: id, token: token, as: .success, output: output, logger: logger)
                    ? .succeeded(output: output) : await adoptRecordedOutcome(id)
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
            encoded = try PortableJSON.encode(
                failure, limit: configuration.maxPayloadBytes, what: "the workflow's error")
        } catch {
            encoded =
                (try? PortableJSON.encode(
                    PortableError(name: failure.name, message: "(error message too large to record)"),
                    limit: configuration.maxPayloadBytes, what: "the workflow's error")) ?? "{}"
        }
        logger.info("workflow failed", metadata: ["error": "\(failure.name)"])
        return await finish(id: id, token: token, as: .error, error: encoded, logger: logger)
            ? .failed(failure) : await adoptRecordedOutcome(id)
    }

    /// Records the outcome; false when the workflow was no longer this run's to finish.
    private func finish(
        id: String, token: String, as status: WorkflowState, output: String? = nil, error: String? = nil, logger: Logger
    ) async -> Bool {
        do {
            let recorded = try await checkpoints.finish(
                WorkflowOutcomeWrite(id: id, token: token, status: status, output: output, error: error))
            if recorded { logger.debug("workflow finished", metadata: ["status": "\(status.rawValue)"]) }
            return recorded
        } catch {
            // The database stayed unreachable past the reconnect timeout, or we are shutting down: the workflow
            // stays PENDING and is recovered on the next start.
            logger.error(
                "could not record the workflow outcome; it stays PENDING for recovery", metadata: ["error": "\(error)"])
            return false
        }
    }

    /// After a run could not record its own outcome, reports whatever outcome the database holds.
    private func adoptRecordedOutcome(_ id: String) async -> RunOutcome {
        guard let row = try? await database.workflowRow(id: id, payloadLimit: configuration.maxPayloadBytes) else {
            return .interrupted
        }
        switch WorkflowState(rawValue: row.status) {
        case .success?: return row.output.map { .succeeded(output: $0) } ?? .interrupted
        case .error?:
            let failure = row.error.flatMap {
                try? PortableJSON.decode(PortableError.self, from: $0, what: "the workflow's error")
            }
            return failure.map { .failed($0) } ?? .interrupted
        default: return .interrupted
        }
    }
}
