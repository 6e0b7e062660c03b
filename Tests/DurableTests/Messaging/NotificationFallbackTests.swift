import Durable
import Foundation
import Logging
import TestSupport
import Testing

/// Waiting workflows rely on LISTEN/NOTIFY and look in the database only rarely while notifications work, so
/// many workflows waiting days for a message cost the database next to nothing; the rare look still delivers a
/// message whose notification was lost.
@Suite("Waiting without polling")
struct NotificationFallbackTests {
    static func runtime(url: String, executor: String, fallback: Duration = .seconds(30)) -> DurableRuntime {
        var logger = Logger(label: "notification-fallback-tests")
        logger.logLevel = .critical
        let runtime = DurableRuntime(
            configuration: DurableConfiguration(
                databaseURL: url, executorID: executor, maxConnections: 6, notificationFallbackInterval: fallback
            ), logger: logger)
        runtime.register(AwaitApproval())
        return runtime
    }

    /// A launched runtime (see ``runtime(url:executor:fallback:)``) on a fresh database, with a harness on it.
    static func launched(_ prefix: String, executor: String, fallback: Duration) async throws -> MessagingHarness {
        let url = try await TestDatabase.fresh(prefix).url
        let runtime = Self.runtime(url: url, executor: executor, fallback: fallback)
        try await runtime.launch()
        return MessagingHarness(url: url, runtime: runtime)
    }

    /// Waits until `count` workflows have recorded their wait's deadline (they are then in the wait loop).
    static func waitUntilWaiting(_ harness: MessagingHarness, count: Int) async throws {
        if try await !harness.waitForSleepCheckpoint(count: count) {
            Issue.record("the workflows did not all reach their recv")
        }
    }

    /// How often the `notifications` table has been read (every look of a waiting recv reads it).
    static func notificationReads(_ harness: MessagingHarness) async throws -> Int {
        try await harness.query(
            """
            SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0) FROM pg_stat_user_tables
            WHERE schemaname = 'dbos' AND relname = 'notifications'
            """
        ).first?.int(0) ?? 0
    }

    @Test(
        "forty workflows waiting for a message do not query the database while nothing happens (they once looked every second each)",
        .tags(.slow), .skippedInFastRuns)
    func idleWaitersCostNothing() async throws {
        // A ten-minute fallback: within this test only a notification can wake a waiter (with the default 30 s,
        // the first fallback looks, some seconds after the sends below, would pass for notifications), and no
        // fallback look can fall into the idle window however slow the machine.
        let harness = try await Self.launched("fallback_idle", executor: "idle-waiters", fallback: .seconds(600))
        let runtime = harness.runtime
        let waiters = 40
        var handles: [WorkflowHandle<Approval?>] = []
        for index in 0..<waiters {
            handles.append(try await runtime.start(AwaitApproval.self, 120_000, id: "idle-\(index)"))
        }
        try await Self.waitUntilWaiting(harness, count: waiters)
        // Each waiter's first look comes right after its deadline checkpoint; a backend that goes idle reports its
        // statistics within ten seconds (PostgreSQL 15's idle interval), so let those land before counting.
        try await Task.sleep(for: .seconds(12))
        let before = try await Self.notificationReads(harness)
        try await Task.sleep(for: .seconds(6))
        let after = try await Self.notificationReads(harness)
        // Looking once a second each, forty waiters read the table about 240 times in six seconds.
        #expect(after - before < waiters, "\(after - before) reads of notifications in 6 s by \(waiters) idle waiters")

        // Notifications still wake every one of them at once.
        let sentAt = ContinuousClock.now
        for index in 0..<waiters {
            try await runtime.send(to: "idle-\(index)", topic: "approval", Approval(approved: true, by: "m\(index)"))
        }
        for (index, handle) in handles.enumerated() {
            #expect(try await handle.result() == Approval(approved: true, by: "m\(index)"))
        }
        #expect(sentAt.duration(to: .now) < .seconds(60), "the waiters were not woken by their notifications")
        await runtime.shutdown()
    }

    @Test("a message whose notification was lost is still received, at the next fallback look")
    func lostNotification() async throws {
        let harness = try await Self.launched("fallback_lost", executor: "lost-notification", fallback: .seconds(1))
        let runtime = harness.runtime
        let handle = try await runtime.start(AwaitApproval.self, 120_000, id: "unnotified")
        try await Self.waitUntilWaiting(harness, count: 1)
        // The NOTIFY comes from the table's trigger: without it the row arrives silently.
        _ = try await harness.query("ALTER TABLE dbos.notifications DISABLE TRIGGER USER")
        let sentAt = ContinuousClock.now
        try await runtime.send(to: "unnotified", topic: "approval", Approval(approved: true, by: "quietly"))
        #expect(try await handle.result() == Approval(approved: true, by: "quietly"))
        #expect(
            sentAt.duration(to: .now) < .seconds(20), "the fallback look (every second here) did not find the message")
        await runtime.shutdown()
    }

    @Test("a fallback interval that is not positive is refused at launch")
    func invalidFallback() async throws {
        let url = try await TestDatabase.fresh("fallback_invalid").url
        let runtime = Self.runtime(url: url, executor: "invalid-fallback", fallback: .zero)
        do {
            try await runtime.launch()
            Issue.record("expected invalidConfiguration")
            await runtime.shutdown()
        } catch let error as DurableError {
            #expect(error.code == .invalidConfiguration)
            #expect(error.message.contains("notificationFallbackInterval"))
        }
    }
}

extension NotificationFallbackTests {
    @Test(
        "on a schema whose messages come without a notification (DBOS with LISTEN/NOTIFY off), waiters look every second, and the log says why"
    )
    func schemaWithoutMessageTrigger() async throws {
        let url = try await TestDatabase.fresh("fallback_no_trigger").url
        let builder = Self.runtime(url: url, executor: "schema-builder")
        try await builder.launch()
        _ = try await MessagingHarness(url: url, runtime: builder).query(
            "DROP TRIGGER dbos_notifications_trigger ON dbos.notifications")
        await builder.shutdown()

        let log = CapturedLog()
        // A ten-minute fallback: only the one-second looks for unannounced messages can find the message in time.
        let runtime = DurableRuntime(
            configuration: DurableConfiguration(
                databaseURL: url, executorID: "no-trigger", maxConnections: 6,
                notificationFallbackInterval: .seconds(600)
            ), logger: log.logger(level: .warning))
        runtime.register(AwaitApproval())
        try await runtime.launch()
        #expect(log.contains("no trigger announcing new messages"))
        let harness = MessagingHarness(url: url, runtime: runtime)
        let handle = try await runtime.start(AwaitApproval.self, 120_000, id: "unannounced")
        try await Self.waitUntilWaiting(harness, count: 1)
        let sentAt = ContinuousClock.now
        try await runtime.send(to: "unannounced", topic: "approval", Approval(approved: true, by: "silently"))
        #expect(try await handle.result() == Approval(approved: true, by: "silently"))
        // The fallback look (ten minutes here) would be the first to find it without the one-second looks; the
        // recv's own two-minute timeout would end it with nil.
        #expect(
            sentAt.duration(to: .now) < .seconds(60), "the message was found only after \(sentAt.duration(to: .now))")
        await runtime.shutdown()
    }
}

extension NotificationFallbackTests {
    @Test(
        "a waiting workflow cancelled by a tool that sends no notification (DBOS's CLI) stops within a heartbeat or two and frees its queue slot"
    )
    func cancelledWithoutNotification() async throws {
        let url = try await TestDatabase.fresh("fallback_silent_cancel").url
        var logger = Logger(label: "notification-fallback-tests")
        logger.logLevel = .critical
        let runtime = DurableRuntime(
            configuration: DurableConfiguration(
                databaseURL: url, executorID: "silent-cancel", maxConnections: 6, heartbeatInterval: .milliseconds(300)
            ), logger: logger)
        runtime.register(AwaitApproval())
        runtime.register(queue: WorkflowQueue("one-slot", workerConcurrency: 1))
        try await runtime.launch()
        let harness = MessagingHarness(url: url, runtime: runtime)
        let waiter = try await runtime.enqueue(AwaitApproval.self, 120_000, queue: "one-slot")
        try await Self.waitUntilWaiting(harness, count: 1)
        // As DBOS's cancel_workflows writes it, with no NOTIFY.
        _ = try await harness.query(
            """
            UPDATE dbos.workflow_status SET status = 'CANCELLED', owner_xid = NULL, queue_name = NULL, deduplication_id = NULL
            WHERE workflow_uuid = $1
            """, [waiter.id])
        // The next workflow on the one-slot queue runs only once the cancelled one's run has stopped (before, it
        // held the slot until its recv next looked, 30 s later).
        let next = try await runtime.enqueue(AwaitApproval.self, 10, queue: "one-slot")
        let started = ContinuousClock.now
        let outcome = try await valueWithin(.seconds(20)) { try await next.result() == nil } ?? false
        #expect(outcome, "the next workflow did not run within 20 s (\(started.duration(to: .now)))")
        await runtime.shutdown()
    }
}
