import Foundation
import Logging

/// Who holds a workflow: cancelling, the runs this process holds (and stopping those that lost their workflow),
/// starting the runs of claimed workflows, timeouts and resume.
extension WorkflowEngine {
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
        guard !local.isEmpty, let owned = try? await database.stillOwned(local.map(\.id), tokens: local.map(\.token))
        else { return }
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
    func startClaimedRun(
        _ registration: WorkflowRegistration, id: String, input: String, token: String, recorded: [Int: RecordedStep],
        deadline: Int64?, queue: String?, partitionKey: String?
    ) {
        if clearStaleLocalRun(id, claimedUnder: token) == nil,
            startRun(
                registration, id: id, input: input, token: token, recorded: recorded, deadline: deadline, queue: queue,
                partitionKey: partitionKey)
        {
            return
        }
        guard state.withLock({ $0.accepting }) else { return }  // shutting down: it stays PENDING for the next start
        logger.warning(
            "claimed a workflow an older run here still held; it runs once that run has stopped",
            metadata: ["workflow": "\(id)"])
        Task { [self] in
            await startRunOnceStaleRunsEnd(
                registration, id: id, input: input, token: token, deadline: deadline, queue: queue,
                partitionKey: partitionKey)
        }
    }

    private func startRunOnceStaleRunsEnd(
        _ registration: WorkflowRegistration, id: String, input: String, token: String,
        deadline: Int64?, queue: String?, partitionKey: String?
    ) async {
        let logger = self.logger.with(workflow: id, name: registration.name)
        for _ in 0..<5 {
            while let stale = clearStaleLocalRun(id, claimedUnder: token) { _ = await stale.value }
            do {
                guard try await database.stillOwned([id], tokens: [token]).contains(id) else {
                    logger.debug("the claimed workflow was cancelled or taken meanwhile; not launched")
                    return
                }
                let steps = try await database.loadSteps(workflowIDs: [id], limit: configuration.maxPayloadBytes)
                if startRun(
                    registration, id: id, input: input, token: token, recorded: steps[id] ?? [:],
                    deadline: deadline, queue: queue, partitionKey: partitionKey)
                {
                    return
                }
            } catch {
                logger.error(
                    "could not launch a claimed workflow; it stays PENDING until this executor restarts or is taken over",
                    metadata: ["error": "\(error)"])
                return
            }
            guard state.withLock({ $0.accepting }) else { return }
        }
        logger.error(
            "could not launch a claimed workflow: another run of it kept appearing here; it stays PENDING until this executor restarts"
        )
    }

    /// A cancellation announced by NOTIFY (from this process or another). It may be stale: the workflow can have
    /// been resumed since, even here, and the resumed run must go on. So a local run is stopped only once the
    /// database shows that it no longer owns the workflow.
    func cancellationAnnounced(_ id: String) {
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
    func timeOut(_ id: String, token: String) async {
        do {
            if try await database.cancel(id: id, onlyIfOwnedBy: token).cancelled {
                logger.info("workflow timed out and is cancelled", metadata: ["workflow": "\(id)"])
            } else {
                logger.debug(
                    "deadline passed for a run that no longer owns its workflow; left alone",
                    metadata: ["workflow": "\(id)"])
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
            throw DurableError(
                .workflowNotRegistered,
                "workflow '\(existing.name ?? "<none>")' is not registered in this process, so it cannot be resumed here",
                workflowID: id)
        }
        // A run of it still winding down here (for example after a cancel) must finish first; a parked one is
        // replaced by the resumed run.
        if let previous = activeRun(id) { _ = await previous.value }
        if let entry = parked.remove(id) { releaseLoad(of: entry) }
        let token = newRunToken()
        guard
            let claimed = try await database.resume(
                id: id, token: token, executorID: configuration.executorID,
                applicationVersion: configuration.applicationVersion, payloadLimit: configuration.maxPayloadBytes
            )
        else {
            return  // it finished meanwhile: nothing to resume
        }
        guard let input = claimed.input else {
            throw DurableError(
                .payloadTooLarge,
                "the recorded input is \(claimed.inputBytes) bytes, above DurableConfiguration.maxPayloadBytes",
                workflowID: id)
        }
        let steps = try await database.loadSteps(workflowIDs: [id], limit: configuration.maxPayloadBytes)
        // Through startClaimedRun: a run of it may have appeared here meanwhile (a claim that took it back), and it
        // lost the workflow to this resume.
        startClaimedRun(
            registration, id: id, input: input, token: token, recorded: steps[id] ?? [:], deadline: nil, queue: nil,
            partitionKey: nil)
    }
}
