import Foundation
import Logging
import Synchronization
import TestSupport
import Testing

@testable import Durable

/// A worker SIGKILLed and never restarted: a live executor notices its silence and finishes its workflows.
@Suite("Takeover of a dead executor's workflows")
struct TakeoverTests {
    /// A quiet runtime of application version "takeover", not launched. With `fastTakeover` it beats every 200 ms
    /// and takes over executors silent for a second (and sweeps its runs that often); else the defaults.
    static func runtime(url: String, executor: String, fastTakeover: Bool = true, parkAfter: Duration? = .seconds(30))
        -> DurableRuntime
    {
        var quiet = Logger(label: "takeover-tests")
        quiet.logLevel = .critical
        return DurableRuntime(
            configuration: DurableConfiguration(
                databaseURL: url, executorID: executor, applicationVersion: "takeover", maxConnections: 4,
                heartbeatInterval: fastTakeover ? .milliseconds(200) : .seconds(5),
                takeoverAfter: fastTakeover ? .milliseconds(1_000) : .seconds(60),
                parkSleepsLongerThan: parkAfter
            ), logger: quiet)
    }

    @Test(
        "a live executor resumes the workflows of one that was SIGKILLed and never came back",
        .tags(.crash), .skippedInFastRuns)
    func takeover() async throws {
        let url = try await TestDatabase.fresh("takeover").url
        let harness = MessagingHarness(
            url: url, runtime: MessagingHarness.makeRuntime(url: url, executorID: "observer") { _ in })
        _ = try await harness.query("CREATE SCHEMA dbos_ledger")
        _ = try await harness.query("CREATE TABLE dbos_ledger.ledger (workflow_id text, step int)")
        let common = ["--url", url, "--workflow", "orphan", "--steps", "3", "--takeover-ms", "1500"]

        let victim = try WorkerProcess("victim", common + ["--executor", "victim", "--start", "--pause-after", "1"])
        #expect(await victim.waitFor(line: "AFTER_STEP 1", timeout: .seconds(30)) != nil)
        await victim.kill()

        let rescuer = try WorkerProcess("rescuer", common + ["--executor", "rescuer"])
        #expect(await rescuer.waitFor(line: "RESULT", timeout: .seconds(30)) == "RESULT 6")
        await rescuer.waitForExit(timeout: .seconds(120))

        let row = try await harness.query(
            "SELECT status, executor_id, recovery_attempts FROM dbos.workflow_status WHERE workflow_uuid = 'orphan'")
        #expect(row.first?.string(0) == "SUCCESS")
        #expect(row.first?.string(1) == "rescuer")
        #expect(row.first?.int(2) == 2)
        let ledger = try await harness.query(
            "SELECT step, count(*) FROM dbos_ledger.ledger WHERE workflow_id = 'orphan' GROUP BY step ORDER BY step")
        #expect(ledger.rows.map { $0.int(1) } == [1, 1, 1])
        let executors = try await harness.query("SELECT executor_id FROM dbos.durable_executors ORDER BY 1")
        #expect(!executors.rows.contains { $0.string(0) == "victim" })
    }

    @Test(
        "a silent executor's workflow that the taker cannot run is not stranded: a process that registers it takes it later"
    )
    func leftForOneWhoKnows() async throws {
        let url = try await TestDatabase.fresh("takeover_unknown").url
        func runtime(_ executor: String, register: (DurableRuntime) -> Void) -> DurableRuntime {
            let runtime = Self.runtime(url: url, executor: executor)
            register(runtime)
            return runtime
        }
        // The first runtime creates the schema; a dead executor ("ghost") then owns a PENDING workflow of a name
        // this runtime does not register, and last beat long ago.
        let unaware = runtime("unaware") { $0.register(TakeoverStranger.Known()) }
        try await unaware.launch()
        let harness = MessagingHarness(url: url, runtime: unaware)
        _ = try await harness.query(
            """
            INSERT INTO dbos.workflow_status (workflow_uuid, status, name, executor_id, application_version, owner_xid,
                recovery_attempts, serialization)
            VALUES ('haunted', 'PENDING', $1, 'ghost', 'takeover', 'ghost-token', 1, 'portable_json')
            """, [TakeoverStranger.name])
        _ = try await harness.query(
            "INSERT INTO dbos.workflow_input (workflow_uuid, inputs) VALUES ('haunted', '{\"positionalArgs\":[20],\"namedArgs\":{}}')"
        )
        _ = try await harness.query(
            "INSERT INTO dbos.durable_executors (executor_id, application_version, last_heartbeat) VALUES ('ghost', 'takeover', 0)"
        )

        // The unaware runtime's monitor finds the ghost silent, cannot run its workflow, and must keep the ghost
        // findable (this once deleted its heartbeat row, so nobody would ever look again).
        try await Task.sleep(for: .seconds(2))
        #expect(
            try await harness.query("SELECT count(*) FROM dbos.durable_executors WHERE executor_id = 'ghost'").first?
                .int(0) == 1)
        #expect(
            try await harness.query("SELECT executor_id FROM dbos.workflow_status WHERE workflow_uuid = 'haunted'")
                .first?.string(0) == "ghost")

        let aware = runtime("aware") { $0.register(TakeoverStranger()) }
        try await aware.launch()
        // Bounded: with the ghost forgotten, nothing would ever run it and the wait would never end.
        var status: String?
        for _ in 0..<300 where status != "SUCCESS" {
            status = try await harness.query("SELECT status FROM dbos.workflow_status WHERE workflow_uuid = 'haunted'")
                .first?.string(0)
            if status != "SUCCESS" { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(status == "SUCCESS")
        if status == "SUCCESS" {
            let result: Int = try await aware.handle(for: "haunted").result()
            #expect(result == 21)
        }
        // Emptied now, the ghost is forgotten (right after the takeover pass that ran it).
        var ghostRows = 1
        for _ in 0..<300 where ghostRows != 0 {
            ghostRows =
                try await harness.query("SELECT count(*) FROM dbos.durable_executors WHERE executor_id = 'ghost'")
                .first?.int(0) ?? -1
            if ghostRows != 0 { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(ghostRows == 0)
        await aware.shutdown()
        await unaware.shutdown()
    }

    @Test(
        "a silent executor's queued workflows go back to their queue and run under its per-process limit, not all at once in the taker"
    )
    func queuedWorkflowsGoBackToTheirQueue() async throws {
        let url = try await TestDatabase.fresh("takeover_queued").url
        let taker = Self.runtime(url: url, executor: "taker")
        taker.register(TakeoverOneAtATime())
        taker.register(queue: WorkflowQueue(TakeoverOneAtATime.queue, workerConcurrency: 1))
        try await taker.launch()
        let harness = MessagingHarness(url: url, runtime: taker)

        // A dead executor ("ghost") had dequeued four workflows of a one-at-a-time queue (its limit allowed that,
        // or it was configured otherwise), and last beat long ago; its heartbeat row goes in last.
        let ids = (1...4).map { "queued-orphan-\($0)" }
        for (offset, id) in ids.enumerated() {
            _ = try await harness.query(
                """
                INSERT INTO dbos.workflow_status (workflow_uuid, status, name, queue_name, executor_id, application_version,
                    owner_xid, recovery_attempts, serialization, started_at_epoch_ms)
                VALUES ($1, 'PENDING', $2, $3, 'ghost', 'takeover', 'ghost-token', 1, 'portable_json', 1)
                """, [id, TakeoverOneAtATime.name, TakeoverOneAtATime.queue])
            _ = try await harness.query(
                "INSERT INTO dbos.workflow_input (workflow_uuid, inputs) VALUES ($1, $2)",
                [
                    id, "{\"positionalArgs\":[\(offset)],\"namedArgs\":{}}",
                ])
        }
        _ = try await harness.query(
            "INSERT INTO dbos.durable_executors (executor_id, application_version, last_heartbeat) VALUES ('ghost', 'takeover', 0)"
        )

        var finished = 0
        for _ in 0..<300 where finished != ids.count {
            finished =
                try await harness.query(
                    "SELECT count(*) FROM dbos.workflow_status WHERE queue_name = $1 AND status = 'SUCCESS'",
                    [
                        TakeoverOneAtATime.queue
                    ]
                ).first?.int(0) ?? 0
            if finished != ids.count { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(finished == ids.count, "the ghost's queued workflows did not all finish")
        // The taker claimed them all at once before (4 running under a per-process limit of 1).
        #expect(TakeoverOneAtATime.mostAtOnce.withLock { $0 } == 1)
        let rows = try await harness.query(
            "SELECT executor_id, recovery_attempts FROM dbos.workflow_status WHERE queue_name = $1",
            [
                TakeoverOneAtATime.queue
            ])
        #expect(
            rows.rows.allSatisfy { $0.string(0) == "taker" && $0.int(1) == 2 },
            "executors and attempts: \(rows.rows.map { ($0.string(0), $0.int(1)) })")
        for (offset, id) in ids.enumerated() where finished == ids.count {
            let result: Int = try await taker.handle(for: id).result()
            #expect(result == offset * 10)
        }
        await taker.shutdown()
    }

    /// A queued workflow of this process, sleeping (parked or in memory), is put back on its queue as a takeover
    /// does when this executor looked silent (a pause, or a restart before its first heartbeat); the dispatcher
    /// here claims it again while the old run (or its parked entry) is still here.
    @Test(
        "a workflow requeued from under a live run here is claimed back and finishes; the old run gives way and its queue slot is freed",
        .tags(.slow), .skippedInFastRuns, arguments: [false, true])
    func claimedBackFromUnderOldRun(parked: Bool) async throws {
        let url = try await TestDatabase.fresh("takeover_stale").url
        // Default heartbeats: the claim path, not the heartbeat's sweep, must retire the old run here.
        let runtime = Self.runtime(
            url: url, executor: "paused", fastTakeover: false, parkAfter: parked ? .milliseconds(200) : nil)
        runtime.register(TakeoverNapper())
        // No per-process limit, so the dispatcher claims the workflow back while the old run still holds its slot.
        runtime.register(queue: WorkflowQueue(TakeoverNapper.queue))
        try await runtime.launch()
        let harness = MessagingHarness(url: url, runtime: runtime)

        // Twenty seconds: the sleep must still be on when the row is requeued below, however slow the machine.
        let first = try await runtime.enqueue(TakeoverNapper.self, 20_000, queue: TakeoverNapper.queue)
        #expect(try await harness.waitForSleepCheckpoint(of: first.id, timeout: .seconds(60)))
        try await Task.sleep(for: .milliseconds(400))  // parked by now, when it parks
        // What a takeover's requeue does to it, and the NOTIFY that goes with it.
        let requeued = try await harness.query(
            """
            UPDATE dbos.workflow_status SET status = 'ENQUEUED', owner_xid = NULL, started_at_epoch_ms = NULL
            WHERE workflow_uuid = $1 AND status = 'PENDING' RETURNING pg_notify('durable_queue_wakeup', queue_name)
            """, [first.id])
        #expect(requeued.rows.count == 1)

        // Before, the claimed-back workflow was never run (launching it was refused while the old run was here)
        // and stayed PENDING for good.
        let outcome = try await valueWithin(.seconds(60)) { try await first.result() }
        #expect(outcome == 20_000, "the workflow claimed back did not finish")
        // Before, a parked entry replaced by the new run's kept its queue slot counted for good.
        let engine = try await runtime.launchedEngine()
        var load = -1
        for _ in 0..<100 where load != 0 {
            load = engine.load(of: TakeoverNapper.queue)
            if load != 0 { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(load == 0, "queue slots still counted after every run ended")
        let steps = try await harness.query(
            "SELECT function_name FROM dbos.operation_outputs WHERE workflow_uuid = $1 ORDER BY function_id", [first.id]
        )
        #expect(steps.rows.map { $0.string(0) } == ["before", "DBOS.sleep", "after"])
        await runtime.shutdown()
    }

    /// This process was paused long enough for another executor to take its workflow, and that executor then
    /// died: taking it over from the dead one must not be skipped because the old, cancelled run here has not
    /// ended yet (its step ignores cancellation).
    @Test(
        "a workflow taken from this process while it was paused, whose taker then died, is taken back even while the old run here winds down",
        .tags(.slow), .skippedInFastRuns)
    func takenBackFromDeadTaker() async throws {
        let url = try await TestDatabase.fresh("takeover_back").url
        let runtime = Self.runtime(url: url, executor: "was-paused")
        runtime.register(TakeoverStubborn())
        try await runtime.launch()
        let harness = MessagingHarness(url: url, runtime: runtime)
        let id = "stubborn-\(UUID().uuidString.prefix(8))"
        let handle = try await runtime.start(TakeoverStubborn.self, id, id: id)
        while !TakeoverStubborn.started.withLock({ $0.contains(id) }) { try await Task.sleep(for: .milliseconds(10)) }
        // What another executor's takeover wrote while this one was paused; that executor died right after.
        let taken = try await harness.query(
            "UPDATE dbos.workflow_status SET executor_id = 'dead-taker', owner_xid = 'dead-taker-token' WHERE workflow_uuid = $1 AND status = 'PENDING' RETURNING 1",
            [id])
        #expect(taken.rows.count == 1, "the workflow ended before the test could hand it to the dead taker")
        _ = try await harness.query(
            "INSERT INTO dbos.durable_executors (executor_id, application_version, last_heartbeat) VALUES ('dead-taker', 'takeover', 0)"
        )
        // Before, the takeover skipped it (a run of it was still here), forgot the dead taker, and it stayed
        // PENDING for good.
        let outcome = try await valueWithin(.seconds(60)) { try await handle.result() }
        #expect(outcome == 2, "the workflow was not finished")
        let row = try await harness.query("SELECT executor_id FROM dbos.workflow_status WHERE workflow_uuid = $1", [id])
        #expect(row.first?.string(0) == "was-paused")
        await runtime.shutdown()
    }
}

extension TakeoverTests {
    /// A process that only looked silent (paused, or cut off by a database restart) can have been taken over and
    /// its heartbeat row forgotten. Work its dispatcher claims afterwards must keep it findable: were it killed
    /// before its next heartbeat, nothing would look for that work again (a torture run left 19 workflows so).
    @Test(
        "a queue claim records the claiming executor's heartbeat, so work it takes after being forgotten stays findable"
    )
    func claimKeepsExecutorFindable() async throws {
        let url = try await TestDatabase.fresh("takeover_forgotten").url
        var quiet = Logger(label: "takeover-tests")
        quiet.logLevel = .critical
        // An hour between heartbeats: only the claim can write the row back within this test.
        let runtime = DurableRuntime(
            configuration: DurableConfiguration(
                databaseURL: url, executorID: "forgotten", applicationVersion: "takeover", maxConnections: 4,
                heartbeatInterval: .seconds(3600), takeoverAfter: nil
            ), logger: quiet)
        runtime.register(TakeoverOneAtATime())
        runtime.register(queue: WorkflowQueue(TakeoverOneAtATime.queue, workerConcurrency: 1))
        try await runtime.launch()
        let harness = MessagingHarness(url: url, runtime: runtime)
        // What a taker's forget does to it.
        _ = try await harness.query("DELETE FROM dbos.durable_executors WHERE executor_id = 'forgotten'")

        let handle = try await runtime.enqueue(TakeoverOneAtATime.self, 7, queue: TakeoverOneAtATime.queue)
        #expect(try await valueWithin(.seconds(60)) { try await handle.result() } == 70)
        let rows = try await harness.query(
            "SELECT count(*) FROM dbos.durable_executors WHERE executor_id = 'forgotten'")
        #expect(rows.first?.int(0) == 1, "the executor that claimed the workflow has no heartbeat row")
        await runtime.shutdown()
    }
}

/// A step that ignores cancellation for ten seconds (a body that does not check), then a second step. Ten, so the
/// test's takeover surely comes while it runs, however long the machine stalls (two once were not enough).
struct TakeoverStubborn: Workflow {
    static let name = "takeover-stubborn"
    static let started = Mutex<Set<String>>([])
    func run(_ ctx: WorkflowContext, _ id: String) async throws -> Int {
        let first: Int = try await ctx.step("slow") {
            Self.started.withLock { _ = $0.insert(id) }
            let end = ContinuousClock.now.advanced(by: .seconds(10))
            while ContinuousClock.now < end { try? await Task.sleep(for: .milliseconds(50)) }
            return 1
        }
        return try await ctx.step("after") { first + 1 }
    }
}

/// A step, a durable sleep, a step.
struct TakeoverNapper: Workflow {
    static let name = "takeover-napper"
    static let queue = "takeover-napper"
    func run(_ ctx: WorkflowContext, _ milliseconds: Int) async throws -> Int {
        _ = try await ctx.step("before") { 1 }
        try await ctx.sleep(for: .milliseconds(milliseconds))
        _ = try await ctx.step("after") { 2 }
        return milliseconds
    }
}

/// A queued workflow that records how many of its kind run at once in this process.
struct TakeoverOneAtATime: Workflow {
    static let name = "takeover-one-at-a-time"
    static let queue = "takeover-one-at-a-time"
    static let running = Mutex(0)
    static let mostAtOnce = Mutex(0)

    func run(_ ctx: WorkflowContext, _ value: Int) async throws -> Int {
        let now = Self.running.withLock { running in
            running += 1
            return running
        }
        Self.mostAtOnce.withLock { $0 = max($0, now) }
        defer { Self.running.withLock { $0 -= 1 } }
        return try await ctx.step("work") {
            try await Task.sleep(for: .milliseconds(300))
            return value * 10
        }
    }
}

/// A workflow only some processes register.
struct TakeoverStranger: Workflow {
    static let name = "takeover-stranger"
    func run(_ ctx: WorkflowContext, _ value: Int) async throws -> Int {
        try await ctx.step("add") { value + 1 }
    }

    /// What the other process registers instead.
    struct Known: Workflow {
        static let name = "takeover-known"
        func run(_ ctx: WorkflowContext, _ value: Int) async throws -> Int { value }
    }
}
