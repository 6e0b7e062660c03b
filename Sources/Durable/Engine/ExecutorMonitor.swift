import Foundation
import Logging
import Synchronization

/// Keeps this executor's heartbeat fresh, stops local runs whose workflow is no longer theirs, resumes this
/// executor's `PENDING` workflows that no live process holds, and takes over the `PENDING` workflows of executors
/// that went silent.
///
/// DBOS recovers an executor's workflows only when a process with the same executor ID starts again, so work of
/// a machine that never comes back is stuck. Here every live executor records a heartbeat; when one has been
/// silent past ``DurableConfiguration/takeoverAfter``, a live executor of the same application version claims
/// its pending workflows (the claim's owner guard lets exactly one claimant win each) and resumes them. Workflows
/// that came from a queue go back to it instead, so they run again under the queue's limits.
final class ExecutorMonitor: Sendable {
    private let engine: WorkflowEngine
    private let loop = BackgroundLoop()
    /// Silent executors this process took over but could not empty (workflows whose names it does not register):
    /// their heartbeat row stays, so a process that knows those names still finds and takes them; this one
    /// does not try again.
    private let leftBehind = Mutex<Set<String>>([])

    init(engine: WorkflowEngine) {
        self.engine = engine
    }

    func start() {
        loop.start { [self] in await self.monitorUntilCancelled() }
    }

    func stop() async {
        await loop.stop()
    }

    private func monitorUntilCancelled() async {
        let configuration = engine.configuration
        while !Task.isCancelled {
            do {
                try await engine.beat()
                await engine.stopRunsNoLongerOwned()
                // A workflow of this executor that no live process holds (a process sharing the executor ID shut
                // down or died mid-run, or a run here could not record its end) would otherwise wait for the next
                // start of this executor: each claim is guarded, so of several sharers exactly one resumes it.
                try await engine.recoverPendingWorkflows(sweeping: true)
                if let limit = configuration.takeoverAfter {
                    try await takeOverSilentExecutors(limit: WorkflowEngine.milliseconds(limit))
                }
            } catch {
                if Task.isCancelled { return }
                engine.logger.warning(
                    "executor heartbeat or takeover failed; retrying", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: configuration.heartbeatInterval)
        }
    }

    private func takeOverSilentExecutors(limit: Int64) async throws {
        let configuration = engine.configuration
        let database = engine.database
        let silent = try await database.silentExecutors(
            applicationVersion: configuration.applicationVersion, besides: configuration.executorID, silence: limit
        )
        let silentNow = Set(silent)
        // One that came back to life (or was forgotten by a process that could empty it) is looked at afresh
        // should it fall silent again.
        leftBehind.withLock { $0.formIntersection(silentNow) }
        for executor in silent {
            guard !Task.isCancelled else { continue }
            if leftBehind.withLock({ $0.contains(executor) }) { continue }
            // Queued workflows first go back to their queues, to be dispatched again under their limits by
            // whichever process serves them (the statement's NOTIFY wakes the dispatchers, this one's too); the
            // rest are claimed and resumed here.
            let requeued = try await database.requeueQueuedWorkflows(
                of: executor, applicationVersion: configuration.applicationVersion)
            let resumed = try await engine.recoverPendingWorkflows(of: executor)
            engine.logger.warning(
                "took over the pending workflows of a silent executor",
                metadata: [
                    "executor": "\(executor)", "resumed": "\(resumed)", "requeued": "\(requeued)",
                ])
            // Only workflows this process cannot run keep the executor findable; others still under it were
            // claimed by someone else meanwhile (or by the executor itself, back from a pause).
            let remaining = try await database.pendingWorkflows(
                executorID: executor, applicationVersion: configuration.applicationVersion
            )
            .filter { workflow in workflow.name.map { engine.registry[$0] == nil } ?? true }
            guard remaining.isEmpty else {
                // Forgetting the executor now would strand these for good: no process would look for them again.
                leftBehind.withLock { _ = $0.insert(executor) }
                engine.logger.warning(
                    "a silent executor's workflows include some this process cannot run; left for a process that registers them",
                    metadata: [
                        "executor": "\(executor)", "remaining": "\(remaining.count)",
                    ])
                continue
            }
            try await database.forgetSilentExecutor(
                executor, silence: limit, applicationVersion: configuration.applicationVersion)
        }
    }
}
