import Foundation
import Logging
import Synchronization

/// Starts queued workflows in this process as capacity allows.
///
/// An enqueue anywhere NOTIFYs the dispatchers of every process, so an idle dispatcher looks at once; a periodic
/// pass covers lost notifications and delayed workflows coming due. A queued run ending here frees a slot and
/// wakes the dispatcher too. Which process starts a workflow is decided by the claim in the database, and every
/// checkpoint write is guarded by the claim's owner token, so only one run of a workflow ever records progress
/// (a run that lost its claim, say in a process paused past a takeover, stops at its next write).
final class QueueDispatcher: Sendable {
    /// The most workflows one claim statement takes.
    static let batchSize = 100
    /// The most partitions of one queue looked at in one pass; the next pass goes on from where this one stopped.
    static let partitionsPerPass = 256

    private let loop = BackgroundLoop()

    private let engine: WorkflowEngine
    private let queues: [WorkflowQueue]
    private let names: [String]
    /// The wake-up the loop currently waits on.
    private let ticket = Mutex<WakeTicket?>(nil)
    /// Per partitioned queue, the last partition key the previous pass reached (nil: start from the first).
    private let partitionCursors = Mutex<[String: String]>([:])
    /// Queued workflows already reported as left alone here (an unregistered name, a missing partition key), each
    /// told once.
    private let reportedUnservable = Mutex<Set<String>>([])
    /// When to look for queued workflows this process leaves alone (``reportUnservable()``): soon after start,
    /// then at doubling intervals up to a minute (the look scans the queues' waiting rows, so it stays rare, yet
    /// a workflow an outside client enqueues shortly after start is reported within seconds, not a minute later).
    static let firstUnservableCheck = Duration.seconds(2)
    static let unservableCheckInterval = Duration.seconds(60)

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
        var unservableCheckGap = Self.firstUnservableCheck
        var nextUnservableCheck = ContinuousClock.now.advanced(by: unservableCheckGap)
        var failures = 0
        while !Task.isCancelled {
            let ticket = listener.ticket(
                channel: SystemDatabase.queueWakeupChannel, payload: NotificationListener.anyPayload)
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
                if ContinuousClock.now >= nextUnservableCheck {
                    unservableCheckGap = min(unservableCheckGap * 2, Self.unservableCheckInterval)
                    nextUnservableCheck = ContinuousClock.now.advanced(by: unservableCheckGap)
                    try await reportUnservable()
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
        guard queue.isPartitioned else {
            return try await claimAndRun(queue, partition: nil, limit: processLimit(of: queue))
        }
        // Each partition is claimed on its own, under its own limits. The order is shuffled so that processes
        // serving the same queue do not all queue up on the same partition's lock first.
        var more = false
        for key in try await nextPartitions(of: queue).shuffled() where !Task.isCancelled {
            var limit = processLimit(of: queue)
            guard limit > 0 else { return false }
            if let perPartition = queue.partitionWorkerConcurrency {
                limit = min(limit, perPartition - engine.load(of: QueuePartition(queue: queue.name, key: key)))
            }
            more = try await claimAndRun(queue, partition: key, limit: limit) || more
        }
        return more
    }

    /// Warns, once per workflow, about queued workflows this process skips although it serves their queue:
    /// their name is not registered here (an outside client enqueued them, or another service shares the queue),
    /// or they have no partition key on a partitioned queue (a DBOS client can enqueue so). They stay `ENQUEUED`,
    /// and the log says why nothing happens to them.
    private func reportUnservable() async throws {
        let configuration = engine.configuration
        let unservable = try await engine.database.unservableQueued(
            queues: queues.map(\.name), partitioned: queues.filter(\.isPartitioned).map(\.name), names: names,
            applicationVersion: configuration.applicationVersion
        )
        for workflow in unservable {
            let isNew = reportedUnservable.withLock { reported in
                if reported.count > 10_000 { reported.removeAll() }  // bounded; a repeat warning is harmless
                return reported.insert(workflow.id).inserted
            }
            guard isNew else { continue }
            let metadata: Logger.Metadata = [
                "workflow": "\(workflow.id)", "workflowName": "\(workflow.name ?? "<none>")",
                "queue": "\(workflow.queue)",
            ]
            if workflow.nameIsKnown {
                engine.logger.warning(
                    "a workflow on a partitioned queue has no partition key, so no dispatch takes it; it stays ENQUEUED (enqueue it with a partition key)",
                    metadata: metadata)
            } else {
                engine.logger.warning(
                    "a queued workflow's name is not registered in this process; it stays ENQUEUED until a process that registers it serves the queue",
                    metadata: metadata)
            }
        }
    }

    /// How many more workflows of `queue` this process may start now (at most one batch).
    private func processLimit(of queue: WorkflowQueue) -> Int {
        guard let perProcess = queue.workerConcurrency else { return Self.batchSize }
        return min(Self.batchSize, perProcess - engine.load(of: queue.name))
    }

    /// The partitions of `queue` to look at in this pass, going round all of them over several passes.
    private func nextPartitions(of queue: WorkflowQueue) async throws -> [String] {
        let cursor = partitionCursors.withLock { $0[queue.name] }
        var keys = try await engine.database.activePartitions(
            queue: queue.name, after: cursor, limit: Self.partitionsPerPass)
        if keys.count < Self.partitionsPerPass, cursor != nil {
            // Reached the end: wrap around to the partitions before the cursor.
            let wrapped = try await engine.database.activePartitions(
                queue: queue.name, after: nil, limit: Self.partitionsPerPass - keys.count)
            keys += wrapped.filter { !keys.contains($0) }
        }
        partitionCursors.withLock { $0[queue.name] = keys.count < Self.partitionsPerPass ? nil : keys.last }
        return keys
    }

    /// Claims up to `limit` workflows (of one partition, if given) and starts them; true when the claim was full.
    private func claimAndRun(_ queue: WorkflowQueue, partition: String?, limit: Int) async throws -> Bool {
        guard limit > 0 else { return false }
        let token = engine.newRunToken()
        let configuration = engine.configuration
        let claimed = try await engine.database.claimQueued(
            queue: queue, partition: partition, limit: limit, token: token, executorID: configuration.executorID,
            applicationVersion: configuration.applicationVersion, names: names,
            payloadLimit: configuration.maxPayloadBytes
        )
        guard !claimed.isEmpty else { return false }
        _ = try await engine.runClaimed(claimed, token: token)
        return claimed.count == limit
    }
}
