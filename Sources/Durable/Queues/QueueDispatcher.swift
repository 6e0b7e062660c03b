import Foundation
import Logging
import Synchronization

/// Starts queued workflows in this process as capacity allows.
///
/// An enqueue anywhere NOTIFYs the dispatchers of every process, so an idle dispatcher looks at once; a periodic
/// pass covers lost notifications and delayed workflows coming due. A queued run ending here frees a slot and
/// wakes the dispatcher too. Which process starts a workflow is decided by the claim in the database, so no
/// workflow ever runs in two processes at once.
final class QueueDispatcher: Sendable {
    /// The most workflows one claim statement takes.
    static let batchSize = 100

    private let loop = BackgroundLoop()

    private let engine: WorkflowEngine
    private let queues: [WorkflowQueue]
    private let names: [String]
    /// The wake-up the loop currently waits on.
    private let ticket = Mutex<WakeTicket?>(nil)

    init(engine: WorkflowEngine, queues: [WorkflowQueue], workflowNames: [String]) {
        self.engine = engine
        self.queues = queues
        self.names = workflowNames
    }

    func start() {
        engine.onQueueCapacity { [weak self] in self?.wake() }
        loop.start { [self] in await self.dispatchUntilCancelled() }
    }

    func stop() async {
        await loop.stop()
    }

    /// Makes the dispatcher look at its queues now (a local enqueue, a freed slot).
    func wake() {
        ticket.withLock { $0 }?.fire()
    }

    private func dispatchUntilCancelled() async {
        let listener = engine.listener
        var lastPromotion = ContinuousClock.now.advanced(by: .seconds(-10))
        var failures = 0
        while !Task.isCancelled {
            let ticket = listener.ticket(channel: QueueStatements.wakeupChannel, payload: NotificationListener.anyPayload)
            self.ticket.withLock { $0 = ticket }
            var more = false
            do {
                if lastPromotion.duration(to: .now) >= .seconds(1) {
                    _ = try await engine.database.promoteDelayed()
                    lastPromotion = .now
                }
                for queue in queues where !Task.isCancelled {
                    more = try await dispatch(queue) || more
                }
                failures = 0
            } catch {
                if Task.isCancelled { break }
                failures += 1
                engine.logger.warning("queue dispatch failed; retrying", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .milliseconds(min(100 * failures, 2_000)))
            }
            if !more {
                await ticket.wait(timeout: min(listener.pollingInterval, .seconds(1)))
            }
            listener.remove(ticket)
        }
    }

    /// Claims and launches what `queue` allows now; true when it may hold more to start right away.
    private func dispatch(_ queue: WorkflowQueue) async throws -> Bool {
        var limit = Self.batchSize
        if let perProcess = queue.workerConcurrency {
            limit = min(limit, perProcess - engine.load(of: queue.name))
        }
        guard limit > 0 else { return false }
        let token = UUID().uuidString.lowercased()
        let configuration = engine.configuration
        let claimed = try await engine.database.claimQueued(
            queue: queue, limit: limit, token: token, executorID: configuration.executorID,
            applicationVersion: configuration.applicationVersion, names: names, payloadLimit: configuration.maxPayloadBytes
        )
        guard !claimed.isEmpty else { return false }
        _ = try await engine.runClaimed(claimed, token: token)
        return claimed.count == limit
    }
}
