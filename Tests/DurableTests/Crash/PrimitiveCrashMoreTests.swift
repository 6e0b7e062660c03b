import Durable
import Foundation
import LibPQ
import TestSupport
import Testing

/// Events, streams, child workflows, cancel and timeouts across a real SIGKILL of a `DurableTestWorker` process
/// and a restart (`PrimitiveCrashTests` does the same for sleeps, transactions and messages). The worker's
/// steps write a ledger row before their checkpoint, so the ledger counts how often each step's effect ran.
///
/// Where a replay could wrongly write a value again (events, streams), the killed process and the restarted one
/// get different `--tag`s, which go into the values: a value rewritten by the restart would carry its tag.
@Suite("More primitives across SIGKILL", .tags(.crash), .skippedInFastRuns)
struct PrimitiveCrashMoreTests {
    /// Runs `body` with a fresh database holding the worker's ledger table, and a launched runtime of the test
    /// process for the operations from outside. That runtime is another executor with no workflows registered,
    /// so it never recovers or runs the worker's workflows itself; it is launched before any worker, so the
    /// schema is in place when they start.
    func withDatabase(_ prefix: String, _ body: (TestDatabase, DurableRuntime) async throws -> Void) async throws {
        let database = try await TestDatabase.fresh(prefix)
        try await database.createLedger()
        let runtime = MessagingHarness.makeRuntime(url: database.url, executorID: "test-operator") { _ in }
        do {
            try await runtime.launch()
            try await body(database, runtime)
        } catch {
            await runtime.shutdown()
            throw error
        }
        await runtime.shutdown()
    }

    /// Every value of `stream` until it ends; nil when it has not ended within `limit`.
    func collect(_ stream: AsyncThrowingStream<String, any Error>, within limit: Duration) async throws -> [String]? {
        try await valueWithin(limit) {
            var values: [String] = []
            for try await value in stream { values.append(value) }
            return values
        }
    }

    func stepNames(_ database: TestDatabase, _ id: String) async throws -> [String] {
        try await database.steps(id).map { "\($0.id):\($0.name)" }
    }

    func nowMilliseconds() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    // MARK: - Events

    @Test(
        "an event set before a SIGKILL is readable while the worker is down, and the restart's replay does not set it again"
    )
    func eventAcrossKill() async throws {
        try await withDatabase("crash_more_event") { database, runtime in
            let id = "announcer"
            let events = ["--event-after", "1", "--event-after", "2"]
            let first = try WorkerProcess(
                "first", workerFlags(database, id: id) + ["--start", "--tag", "first", "--pause-after", "1"] + events)
            #expect(await first.waitFor(line: "EVENT_SET 1") != nil)
            await first.kill()

            // Committed with its checkpoint before the kill: readable from outside while nothing runs the workflow.
            #expect(try await runtime.getEvent(id, key: "progress", as: String.self, timeout: .seconds(5)) == "first-1")
            #expect(try await database.status(id) == "PENDING")

            let second = try WorkerProcess("restart", workerFlags(database, id: id) + ["--tag", "second"] + events)
            #expect(await second.waitFor(line: "RESULT") == "RESULT 6")
            #expect(await second.waitForExit()?.status == 0)
            #expect(second.lines(startingWith: "IN_STEP") == ["IN_STEP 2", "IN_STEP 3"])  // step 1 was replayed

            // The latest value is the one the restart set after the kill point...
            #expect(
                try await runtime.getEvent(id, key: "progress", as: String.self, timeout: .seconds(5)) == "second-2")
            // ...and the history holds one row per setEvent call, the first still with the killed process's
            // value: the replay neither set it again ("second-1") nor added a row.
            let history = try await database.query(
                "SELECT function_id, value FROM dbos.workflow_events_history WHERE workflow_uuid = $1 AND key = 'progress' ORDER BY function_id",
                [id]
            )
            #expect(
                history.rows.map { "\($0.int(0) ?? -1) \($0.string(1) ?? "")" } == [#"2 "first-1""#, #"4 "second-2""#])
            let latest = try await database.query(
                "SELECT key, value FROM dbos.workflow_events WHERE workflow_uuid = $1", [id])
            #expect(latest.rows.map { "\($0.string(0) ?? "") \($0.string(1) ?? "")" } == [#"progress "second-2""#])
            #expect(
                try await stepNames(database, id) == [
                    "1:step-1", "2:DBOS.setEvent", "3:step-2", "4:DBOS.setEvent", "5:step-3",
                ])
            #expect(try await database.ledger(id) == [1: 1, 2: 1, 3: 1])
        }
    }

    // MARK: - Streams

    @Test("a stream written across a SIGKILL and a restart is read from outside with every value once, in order")
    func streamAcrossKill() async throws {
        try await withDatabase("crash_more_stream") { database, runtime in
            let id = "streamer"
            let first = try WorkerProcess(
                "first",
                workerFlags(database, id: id, steps: 5) + [
                    "--start", "--stream", "--tag", "first", "--pause-after", "3",
                ])
            // The stream can be read once the workflow exists; this reader keeps reading through the kill and
            // the restart, until the workflow closes the stream.
            #expect(await first.waitFor(line: "BODY") != nil)
            let reader = Task {
                try await collect(runtime.readStream(id, key: "numbers", as: String.self), within: .seconds(90))
            }
            #expect(await first.waitFor(line: "STREAMED 3") != nil)
            await first.kill()

            let second = try WorkerProcess(
                "restart", workerFlags(database, id: id, steps: 5) + ["--stream", "--tag", "second"])
            #expect(await second.waitFor(line: "RESULT") == "RESULT 15")
            #expect(await second.waitForExit()?.status == 0)
            #expect(second.lines(startingWith: "STREAM_CLOSED").count == 1)

            // The first three values come from the killed process, the rest from the restart: none was written
            // again by the replay ("second-1"...), none lost.
            let expected = ["first-1", "first-2", "first-3", "second-4", "second-5"]
            #expect(try await reader.value == expected)
            // A reader starting after the end reads the same, from the table.
            #expect(
                try await collect(runtime.readStream(id, key: "numbers", as: String.self), within: .seconds(30))
                    == expected)
            let rows = try await database.query(
                #"SELECT "offset", value FROM dbos.streams WHERE workflow_uuid = $1 AND key = 'numbers' ORDER BY "offset""#,
                [id]
            )
            #expect(
                rows.rows.map { "\($0.int(0) ?? -1) \($0.string(1) ?? "")" }
                    == expected.enumerated().map { #"\#($0.offset) "\#($0.element)""# } + [
                        #"5 "__DBOS_STREAM_CLOSED__""#
                    ])
            #expect(try await database.ledger(id) == [1: 1, 2: 1, 3: 1, 4: 1, 5: 1])
        }
    }

    // MARK: - Child workflows

    /// Where the child stands when the process running parent and child is killed.
    enum ChildKillPoint: String, CaseIterable, Sendable, CustomTestStringConvertible {
        /// The child's first step is checkpointed; it is blocked before its second.
        case afterFirstStep
        /// The child is inside its first step's transaction: its start is checkpointed, nothing of it committed.
        case insideFirstTransaction

        var testDescription: String { rawValue }
        var pauseFlags: [String] {
            self == .afterFirstStep ? ["--pause-after", "1"] : ["--transactional", "--pause-in", "1"]
        }
        /// The restart runs the same code as the killed process.
        var restartFlags: [String] { self == .afterFirstStep ? [] : ["--transactional"] }
        var pauseLine: String { self == .afterFirstStep ? "AFTER_STEP 1" : "IN_STEP 1" }
        /// The child's ledger the kill leaves: a killed transaction's row is rolled back.
        var ledgerAtKill: [Int: Int] { self == .afterFirstStep ? [1: 1] : [:] }
    }

    @Test(
        "a parent killed while its child runs gets the same child back after the restart; the child runs once",
        arguments: ChildKillPoint.allCases)
    func childAcrossKill(_ point: ChildKillPoint) async throws {
        try await withDatabase("crash_more_child") { database, _ in
            let id = "family"
            let child = id + "-child"
            let first = try WorkerProcess(
                "first", workerFlags(database, id: id) + ["--parent", "--start"] + point.pauseFlags)
            #expect(await first.waitFor(line: "CHILD_STARTED") == "CHILD_STARTED \(child)")
            #expect(await first.waitFor(line: point.pauseLine) != nil)
            await first.kill()

            // What the kill left: the parent's checkpoint of the child start, both workflows PENDING.
            #expect(try await stepNames(database, id) == ["1:parent-before", "2:ledger"])
            #expect(
                try await database.value(
                    "SELECT child_workflow_id FROM dbos.operation_outputs WHERE workflow_uuid = $1 AND function_id = 2",
                    [id]) == child)
            #expect(try await database.status(id) == "PENDING")
            #expect(try await database.status(child) == "PENDING")
            #expect(try await database.ledger(child) == point.ledgerAtKill)

            let second = try WorkerProcess("restart", workerFlags(database, id: id) + ["--parent"] + point.restartFlags)
            #expect(await second.waitFor(line: "RESULT") == "RESULT 106")
            #expect(await second.waitFor(line: "CHILD ") == "CHILD RESULT 6")
            #expect(await second.waitForExit()?.status == 0)
            // The replayed parent got the recorded child back; the child was recovered once, not started anew.
            #expect(second.lines(startingWith: "CHILD_STARTED") == ["CHILD_STARTED \(child)"])
            #expect(second.lines(startingWith: "BODY") == ["BODY \(child)"])
            #expect(second.lines(startingWith: "CHILD_RESULT") == ["CHILD_RESULT 6"])

            // Exactly these two workflows exist: no second child under another ID.
            let rows = try await database.query(
                "SELECT workflow_uuid, status, COALESCE(parent_workflow_id, '-') FROM dbos.workflow_status ORDER BY 1")
            #expect(
                rows.rows.map { $0.values.map { $0 ?? "nil" }.joined(separator: " ") } == [
                    "\(id) SUCCESS -", "\(child) SUCCESS \(id)",
                ])
            #expect(try await database.ledger(child) == [1: 1, 2: 1, 3: 1])
            #expect(try await database.ledger(id) == [1: 1, 2: 1])
            #expect(try await stepNames(database, id) == ["1:parent-before", "2:ledger", "3:parent-after"])
        }
    }

    // MARK: - Cancel

    /// How the workflow waits when its process is killed.
    enum Wait: String, CaseIterable, Sendable, CustomTestStringConvertible {
        case sleep, recv
        var testDescription: String { rawValue }
        /// A 20 s sleep: long enough to be killed inside it even when the machine stalls for seconds between the
        /// checkpoint and the kill (4 s was not); the resumed run sleeps only what is left of it.
        var flags: [String] { self == .sleep ? ["--sleep-after", "1", "20000"] : ["--recv-after", "1"] }
        var line: String { self == .sleep ? "SLEEPING" : "WAITING" }
    }

    @Test(
        "a workflow cancelled while its killed worker is down stays cancelled on restart, and a resume finishes it from its checkpoint",
        .tags(.slow), arguments: Wait.allCases)
    func cancelWhileDown(_ wait: Wait) async throws {
        try await withDatabase("crash_more_cancel") { database, runtime in
            let id = "stopped-\(wait.rawValue)"
            let flags = workerFlags(database, id: id, steps: 2) + wait.flags
            let first = try WorkerProcess("first", flags + ["--start"])
            #expect(await first.waitFor(line: wait.line) != nil)
            // The line comes just before the wait checkpoints its deadline (a DBOS.sleep row, for recv too):
            // kill once that is committed, so the workflow is waiting as far as the database knows.
            #expect(
                try await eventually {
                    try await database.value(
                        "SELECT count(*) FROM dbos.operation_outputs WHERE workflow_uuid = $1 AND function_name = 'DBOS.sleep'",
                        [id]) == "1"
                })
            await first.kill()
            #expect(try await database.ledger(id) == [1: 1])  // killed inside the wait, before step 2

            try await runtime.cancel(id)
            #expect(try await database.status(id) == "CANCELLED")
            // For recv, the message it waits for is already there: a cancelled workflow must not take it.
            if wait == .recv { try await runtime.send(to: id, topic: "go", "proceed") }
            let checkpointsAtCancel = try await stepNames(database, id)

            // The restart recovers only PENDING workflows: it does not run this one (its result is the cancel).
            let second = try WorkerProcess("restart", flags)
            let outcome = await second.waitFor(line: "ERROR")
            #expect(outcome?.hasPrefix("ERROR workflowCancelled") == true, "\(outcome ?? "nil")")
            #expect(await second.waitForExit()?.status == 1)
            #expect(second.lines(startingWith: "BODY").isEmpty)
            #expect(try await database.status(id) == "CANCELLED")
            #expect(try await stepNames(database, id) == checkpointsAtCancel)
            #expect(try await database.ledger(id) == [1: 1])
            if wait == .recv {
                #expect(
                    try await database.value(
                        "SELECT bool_or(consumed)::text FROM dbos.notifications WHERE destination_uuid = $1", [id])
                        == "false")
            }

            // Resume runs the workflow in the calling process, so it needs the code: the test process has none,
            // and is refused without touching the workflow.
            do {
                try await runtime.resume(id)
                Issue.record("resume without the workflow's code was expected to fail")
            } catch let error as DurableError {
                #expect(error.code == .workflowNotRegistered)
            }
            #expect(try await database.status(id) == "CANCELLED")

            // A worker with the code resumes it: from its last checkpoint, so step 1 does not run again.
            let third = try WorkerProcess("resume", flags + ["--resume"])
            #expect(await third.waitFor(line: "RESULT") == "RESULT 3")
            #expect(await third.waitForExit()?.status == 0)
            #expect(third.lines(startingWith: "IN_STEP") == ["IN_STEP 2"])
            if wait == .recv { #expect(third.lines(startingWith: "GOT") == ["GOT proceed"]) }
            #expect(try await database.status(id) == "SUCCESS")
            #expect(try await database.ledger(id) == [1: 1, 2: 1])
        }
    }

    // MARK: - Timeouts

    @Test(
        "a parent with a timeout killed mid-run and restarted after its deadline ends cancelled with its child; no step runs after the deadline",
        .tags(.slow))
    func timeoutWhileDown() async throws {
        try await withDatabase("crash_more_timeout") { database, _ in
            let id = "deadline"
            let child = id + "-child"
            // 25 s: room for the worker to start and reach the kill point before the deadline on a machine that
            // stalls for seconds at the start of a test run (10 s left little room).
            let first = try WorkerProcess(
                "first",
                workerFlags(database, id: id) + ["--parent", "--start", "--timeout-ms", "25000", "--pause-after", "1"])
            #expect(await first.waitFor(line: "CHILD_STARTED") == "CHILD_STARTED \(child)")
            #expect(await first.waitFor(line: "AFTER_STEP 1") != nil)
            await first.kill()
            let killedAt = nowMilliseconds()

            let deadlines = try await database.query(
                "SELECT workflow_uuid, workflow_deadline_epoch_ms FROM dbos.workflow_status ORDER BY 1"
            ).rows.map { ($0.string(0) ?? "", $0.int64(1)) }
            #expect(deadlines.map(\.0) == [id, child])
            let deadline = try #require(deadlines.first?.1)
            #expect(deadlines.last?.1 == deadline)  // the child inherited the parent's deadline
            try #require(
                killedAt < deadline,
                "the worker reached the kill point only after the deadline; the test proves nothing then")
            #expect(try await database.status(id) == "PENDING")
            #expect(try await database.status(child) == "PENDING")

            // Restart once the deadline has passed while nothing ran either workflow.
            while nowMilliseconds() < deadline + 200 { try await Task.sleep(for: .milliseconds(50)) }
            let second = try WorkerProcess("restart", workerFlags(database, id: id) + ["--parent"])
            let parentOutcome = await second.waitFor(line: "ERROR")
            #expect(parentOutcome?.hasPrefix("ERROR workflowCancelled") == true, "\(parentOutcome ?? "nil")")
            let childOutcome = await second.waitFor(line: "CHILD ")
            #expect(await second.waitForExit()?.status == 1)
            #expect(try await database.status(id) == "CANCELLED")
            #expect(try await database.ledger(id) == [1: 1])
            #expect(try await stepNames(database, id) == ["1:parent-before", "2:ledger"])

            // A workflow recovered after its deadline must not run one more step (this once failed: the body
            // replayed and ran its next steps while the timeout's cancel raced it in another task).
            let childStatus = try await database.status(child)
            let childLedger = try await database.ledger(child)
            let childSteps = try await stepNames(database, child)
            #expect(childOutcome?.hasPrefix("CHILD ERROR workflowCancelled") == true, "\(childOutcome ?? "nil")")
            #expect(childStatus == "CANCELLED")
            // No step ran after the deadline: no step body started in the restart, the child's ledger holds
            // only what ran before the kill, and no checkpoint was added.
            #expect(second.lines(startingWith: "IN_STEP").isEmpty, "\(second.lines(startingWith: "IN_STEP"))")
            #expect(childLedger == [1: 1])
            #expect(childSteps == ["1:step-1"])
        }
    }
}
