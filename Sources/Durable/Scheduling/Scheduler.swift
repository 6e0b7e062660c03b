import Foundation
import Logging
import Synchronization

/// Fires registered schedules: at each tick it enqueues the tick's workflow under its deterministic ID, so however
/// many processes fire the same tick, it runs once.
final class Scheduler: Sendable {
    /// The most missed ticks a back-filling schedule catches up on at start.
    static let backfillLimit = 1_000

    private let engine: WorkflowEngine
    private let schedules: [WorkflowSchedule]
    private let loops = Mutex<[Task<Void, Never>]>([])

    init(engine: WorkflowEngine, schedules: [WorkflowSchedule]) {
        self.engine = engine
        self.schedules = schedules
    }

    func start() async throws {
        for schedule in schedules {
            try await engine.database.registerSchedule(schedule, queue: WorkflowQueue.internalQueueName)
        }
        let tasks = schedules.map { schedule in Task { [self] in await self.fire(schedule) } }
        loops.withLock { $0 = tasks }
    }

    func stop() async {
        let tasks = loops.withLock { loops -> [Task<Void, Never>] in
            defer { loops = [] }
            return loops
        }
        tasks.forEach { $0.cancel() }
        for task in tasks { await task.value }
    }

    private func fire(_ schedule: WorkflowSchedule) async {
        var last = Date()
        if schedule.missedTicks == .backfill, let recorded = try? await lastFired(schedule) {
            // Back-fill from the last tick any process fired, at most a year back.
            last = max(recorded, Date().addingTimeInterval(-366 * 86_400))
        }
        var caughtUp = 0
        while !Task.isCancelled {
            guard let tick = schedule.cron.nextFire(after: last, in: schedule.timeZone) else {
                engine.logger.warning(
                    "schedule has no future tick; it stops", metadata: ["schedule": "\(schedule.name)"])
                return
            }
            let wait = tick.timeIntervalSinceNow
            if wait > 0 {
                caughtUp = 0
                try? await Task.sleep(for: .milliseconds(Int64((wait * 1000).rounded(.up))))
                if Task.isCancelled { return }
            } else {
                caughtUp += 1
                if caughtUp > Self.backfillLimit {
                    engine.logger.warning(
                        "schedule back-fill stopped at its limit; older ticks are skipped",
                        metadata: ["schedule": "\(schedule.name)"])
                    last = Date()
                    continue
                }
            }
            do {
                try await enqueue(schedule, tick: tick)
                last = tick
            } catch {
                engine.logger.warning(
                    "could not start a scheduled workflow; retrying",
                    metadata: ["schedule": "\(schedule.name)", "error": "\(error)"])
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    private func enqueue(_ schedule: WorkflowSchedule, tick: Date) async throws {
        let input = try PortableJSON.encodeInput(
            ScheduledRun(scheduledAt: tick, scheduleName: schedule.name), limit: engine.configuration.maxPayloadBytes)
        _ = try await engine.enqueue(
            name: schedule.workflowName, input: input, queue: WorkflowQueue.internalQueueName,
            options: EnqueueOptions(id: schedule.workflowID(for: tick)))
        try await engine.database.recordFiredTick(of: schedule.name, tick: PortableJSON.formatDate(tick))
    }

    private func lastFired(_ schedule: WorkflowSchedule) async throws -> Date? {
        try await engine.database.lastFiredTick(of: schedule.name).flatMap(PortableJSON.parseDate)
    }
}
