import Durable
import Foundation
import Synchronization
import TestSupport
import Testing

/// Counts runs per tick across every runtime in this process.
enum TickLog {
    static let runs = Mutex<[String: [Date: Int]]>([:])
    static func record(_ run: ScheduledRun) {
        runs.withLock { $0[run.scheduleName, default: [:]][run.scheduledAt, default: 0] += 1 }
    }
    static func ticks(_ schedule: String) -> [Date: Int] { runs.withLock { $0[schedule] ?? [:] } }
}

struct Ticker: Workflow {
    static let name = "ticker"
    func run(_ ctx: WorkflowContext, _ tick: ScheduledRun) async throws -> Bool {
        try await ctx.step("record") { TickLog.record(tick) }
        return true
    }
}

@Suite("Cron expressions")
struct CronExpressionTests {
    let utc = TimeZone.gmt
    func date(_ text: String) -> Date { parsePortableDate(text) }

    @Test("next fire times, with seconds, steps, ranges, names and time zones")
    func nextFire() throws {
        #expect(
            try CronExpression("*/5 * * * * *").nextFire(after: date("2026-03-01T12:00:03.000Z"), in: utc)
                == date("2026-03-01T12:00:05.000Z"))
        #expect(
            try CronExpression("0 0 1 * *").nextFire(after: date("2026-03-15T08:00:00.000Z"), in: utc)
                == date("2026-04-01T00:00:00.000Z"))
        #expect(
            try CronExpression("0 30 9 * * MON-FRI").nextFire(after: date("2026-11-27T15:00:00.000Z"), in: utc)
                == date("2026-11-30T09:30:00.000Z"))
        let newYork = try #require(TimeZone(identifier: "America/New_York"))
        #expect(
            try CronExpression("0 0 9 * * *").nextFire(after: date("2026-07-01T00:00:00.000Z"), in: newYork)
                == date("2026-07-01T13:00:00.000Z"))
        #expect(
            try CronExpression("0 0 12 13 * FRI").nextFire(after: date("2026-01-01T00:00:00.000Z"), in: utc)
                == date("2026-01-02T12:00:00.000Z"))
        #expect(
            try CronExpression("0 0 0 29 FEB *").nextFire(after: date("2026-03-01T00:00:00.000Z"), in: utc)
                == date("2028-02-29T00:00:00.000Z"))
    }

    @Test(
        "invalid expressions are clear errors",
        arguments: [
            "* * *", "61 * * * * *", "a b c d e", "5-1 * * * *", "*/0 * * * *", "* * * * * * *", "1,,2 * * * *",
        ])
    func invalid(_ text: String) {
        do {
            _ = try CronExpression(text)
            Issue.record("expected '\(text)' to be rejected")
        } catch let error as DurableError {
            #expect(error.code == .invalidArgument)
            #expect(error.message.contains("cron expression"))
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }
}

@Suite("Scheduled workflows")
struct ScheduleTests {
    static func runtime(url: String, executor: String, schedule: String, missed: MissedTicks = .skip) throws
        -> DurableRuntime
    {
        let runtime = MessagingHarness.makeRuntime(url: url, executorID: executor) { $0.register(Ticker()) }
        try runtime.schedule(Ticker.self, name: schedule, cron: "* * * * * *", missedTicks: missed)
        return runtime
    }

    @Test("a schedule served by three processes fires once per tick")
    func oncePerTick() async throws {
        let url = try await TestDatabase.fresh("schedule_three").url
        let name = "every-second-\(UUID().uuidString.prefix(6))"
        let runtimes = try (1...3).map { try Self.runtime(url: url, executor: "s\($0)", schedule: name) }
        for runtime in runtimes { try await runtime.launch() }
        // Until three ticks have run (a fixed window sometimes held only one on a busy machine).
        try await waitUntil { TickLog.ticks(name).count >= 3 }
        for runtime in runtimes { await runtime.shutdown() }
        let ticks = TickLog.ticks(name)
        #expect(ticks.count >= 2)
        #expect(ticks.values.allSatisfy { $0 == 1 })
        let rows = try await MessagingHarness(url: url, runtime: runtimes[0]).query(
            "SELECT count(*), count(DISTINCT workflow_uuid) FROM dbos.workflow_status WHERE workflow_uuid LIKE $1",
            ["sched-\(name)-%"])
        #expect(rows.first?.int(0) == rows.first?.int(1))
        #expect((rows.first?.int(0) ?? 0) >= ticks.count)
    }

    @Test(
        "after downtime, a back-filling schedule runs the ticks it missed; a skipping one does not",
        .tags(.slow), .skippedInFastRuns)
    func backfill() async throws {
        for missed in [MissedTicks.backfill, .skip] {
            let url = try await TestDatabase.fresh("schedule_backfill").url
            let name = "catch-up-\(UUID().uuidString.prefix(6))"
            let first = try Self.runtime(url: url, executor: "b1", schedule: name, missed: missed)
            try await first.launch()
            // Run until the first process has served at least one tick (launching can be slow on a busy machine).
            try await waitUntil { TickLog.ticks(name).count >= 1 }
            await first.shutdown()
            let downtimeStart = Date()
            try await Task.sleep(for: .milliseconds(3_000))
            let second = try Self.runtime(url: url, executor: "b1", schedule: name, missed: missed)
            try await second.launch()
            let restarted = Date()
            func gaps() -> Int {
                let ticks = TickLog.ticks(name).keys.sorted()
                return zip(ticks, ticks.dropFirst()).filter { $1.timeIntervalSince($0) > 1.5 }.count
            }
            // Back-filled ticks run beside the new ones and may finish after them: for back-fill, wait for the
            // gap to close too (if it never does, the wait records the failure).
            try await waitUntil {
                TickLog.ticks(name).keys.contains { $0 > restarted } && (missed != .backfill || gaps() == 0)
            }
            await second.shutdown()
            #expect(TickLog.ticks(name).keys.contains { $0 < downtimeStart })
            let ticks = TickLog.ticks(name).keys.sorted()
            let gaps = gaps()
            if missed == .backfill {
                #expect(gaps == 0, "back-fill should leave no gap: \(ticks)")
            } else {
                #expect(gaps >= 1, "skip should leave the downtime's ticks out: \(ticks)")
            }
        }
    }
}

/// Polls `condition` every 50 ms for up to 30 s; records an issue when it never held.
private func waitUntil(_ condition: () -> Bool) async throws {
    guard await eventually(timeout: .seconds(30), every: .milliseconds(50), condition) else {
        try Task.checkCancellation()  // a cancelled test ends with the cancellation, not a timeout it did not have
        Issue.record("condition not met within 30 s")
        return
    }
}

private func parsePortableDate(_ text: String) -> Date {
    try! Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text)
}
