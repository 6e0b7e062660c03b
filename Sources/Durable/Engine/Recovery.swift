import Foundation
import Logging

extension WorkflowEngine {
    /// How many pending workflows one claim statement takes over.
    static let recoveryBatchSize = 500

    /// Resumes this executor's `PENDING` workflows from their last checkpoints (or, given `executor`, a silent
    /// executor's).
    ///
    /// Of this executor's own workflows, those a live process holds are left to it (another process sharing the
    /// executor ID, or this one's runs) when this instance tracks processes. Workflows whose name is not
    /// registered here are logged (not when `sweeping`: the heartbeat's pass looks again every few seconds) and
    /// left alone. Each claim moves a workflow to a
    /// new owner token, so of several processes recovering the same executor's work exactly one runs each
    /// workflow. A workflow past ``DurableConfiguration/maxRecoveryAttempts`` becomes
    /// `MAX_RECOVERY_ATTEMPTS_EXCEEDED` instead of running again. Database errors propagate (the caller retries
    /// the whole pass); nothing is silently skipped.
    ///
    /// - Returns: the number of workflows resumed.
    @discardableResult
    func recoverPendingWorkflows(of executor: String? = nil, sweeping: Bool = false) async throws -> Int {
        let owner = executor ?? configuration.executorID
        let version = configuration.applicationVersion
        let pending =
            executor == nil && tracksInstances
            ? try await database.unownedPendingWorkflows(
                executorID: owner, applicationVersion: version, instanceID: instanceID)
            : try await database.pendingWorkflows(executorID: owner, applicationVersion: version)
        var runnable: [SystemDatabase.PendingWorkflow] = []
        for workflow in pending {
            guard let name = workflow.name, registry[name] != nil else {
                if sweeping { continue }
                logger.warning(
                    "pending workflow has no registered code in this process; left alone",
                    metadata: [
                        "workflow": "\(workflow.id)", "workflowName": "\(workflow.name ?? "<none>")",
                    ])
                continue
            }
            // Left alone only while a run here still owns it as listed; an older run of it here that lost it (this
            // process was paused and it was taken over) is retired when the claim goes through.
            if localToken(of: workflow.id).map({ $0 != workflow.ownerToken }) ?? true { runnable.append(workflow) }
        }
        var resumed = 0
        var start = 0
        while start < runnable.count {
            let batch = Array(runnable[start..<min(start + Self.recoveryBatchSize, runnable.count)])
            start += batch.count
            resumed += try await recover(batch, from: owner)
        }
        if sweeping {
            if resumed > 0 {
                logger.warning(
                    "resumed workflows of this executor that no live process held", metadata: ["resumed": "\(resumed)"])
            }
        } else if !pending.isEmpty {
            logger.info("recovery pass done", metadata: ["pending": "\(pending.count)", "resumed": "\(resumed)"])
        }
        return resumed
    }

    private func recover(_ batch: [SystemDatabase.PendingWorkflow], from owner: String) async throws -> Int {
        let token = newRunToken()
        let claimed = try await database.claimForRecovery(
            batch, newToken: token, from: owner, executorID: configuration.executorID,
            payloadLimit: configuration.maxPayloadBytes
        )
        return try await runClaimed(claimed, token: token)
    }

    /// Runs workflows this process has just claimed (by recovery or from a queue): moves those past their
    /// recovery attempts to `MAX_RECOVERY_ATTEMPTS_EXCEEDED`, loads the checkpoints of the rest in one query and
    /// launches them. Returns how many were launched.
    func runClaimed(_ claimed: [SystemDatabase.ClaimedWorkflow], token: String) async throws -> Int {
        var runnable: [SystemDatabase.ClaimedWorkflow] = []
        for workflow in claimed {
            // DBOS counts the first run as attempt 1, so `max` recoveries are allowed before the dead letter.
            if workflow.recoveryAttempts > configuration.maxRecoveryAttempts + 1 {
                _ = clearStaleLocalRun(workflow.id, claimedUnder: token)  // an older run here lost it to this claim
                try await database.deadLetter(id: workflow.id, token: token)
                logger.error(
                    "workflow exceeded its recovery attempts and was moved to MAX_RECOVERY_ATTEMPTS_EXCEEDED",
                    metadata: [
                        "workflow": "\(workflow.id)", "attempts": "\(workflow.recoveryAttempts)",
                    ])
                continue
            }
            runnable.append(workflow)
        }
        let steps =
            runnable.isEmpty
            ? [:] : try await database.loadSteps(workflowIDs: runnable.map(\.id), limit: configuration.maxPayloadBytes)
        var launched = 0
        for workflow in runnable {
            guard let name = workflow.name, let registration = registry[name] else { continue }
            guard let input = workflow.input else {
                let problem =
                    workflow.inputBytes > configuration.maxPayloadBytes
                    ? DurableError(
                        .payloadTooLarge,
                        "the recorded input is \(workflow.inputBytes) bytes, above DurableConfiguration.maxPayloadBytes",
                        workflowID: workflow.id)
                    : DurableError(.corruptedCheckpoint, "the workflow has no recorded input", workflowID: workflow.id)
                await failWithoutRunning(workflow.id, token: token, problem)
                continue
            }
            logger.debug(
                "running claimed workflow",
                metadata: [
                    "workflow": "\(workflow.id)", "workflowName": "\(name)",
                    "recordedSteps": "\(steps[workflow.id]?.count ?? 0)",
                ])
            startClaimedRun(
                registration, id: workflow.id, input: input, token: token, recorded: steps[workflow.id] ?? [:],
                deadline: workflow.deadlineMilliseconds, queue: workflow.queueName, partitionKey: workflow.partitionKey)
            launched += 1
        }
        return launched
    }

    /// Records `ERROR` for a claimed workflow that cannot even start.
    private func failWithoutRunning(_ id: String, token: String, _ problem: DurableError) async {
        logger.error("workflow cannot be resumed", metadata: ["workflow": "\(id)", "error": "\(problem)"])
        guard
            let encoded = try? PortableJSON.encode(
                PortableError(describing: problem), limit: configuration.maxPayloadBytes, what: "the error")
        else { return }
        _ = try? await database.finishWorkflow(id: id, token: token, status: .error, output: nil, error: encoded)
    }
}
