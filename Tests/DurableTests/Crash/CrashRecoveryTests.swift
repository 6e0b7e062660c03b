import Durable
import Foundation
import LibPQ
import TestSupport
import Testing

/// Recovery across a real SIGKILL of a `DurableTestWorker` process and a restart. Each worker step writes a
/// ledger row *before* its checkpoint, so the ledger counts how often each step's effect really ran.
@Suite("Crash recovery across SIGKILL", .tags(.crash), .skippedInFastRuns)
struct CrashRecoveryTests {
    /// A fresh database with the worker's ledger table.
    func database(_ prefix: String) async throws -> TestDatabase {
        let database = try await TestDatabase.fresh(prefix)
        try await database.createLedger()
        return database
    }

    /// The whole `workflow_status` row as JSON text, to compare before and after.
    func snapshot(_ database: TestDatabase, _ id: String) async throws -> String? {
        try await database.value(
            "SELECT row_to_json(ws)::text FROM dbos.workflow_status ws WHERE workflow_uuid = $1", [id])
    }

    func expectCleanExit(_ worker: WorkerProcess, code: Int32 = 0, sourceLocation: SourceLocation = #_sourceLocation)
        async
    {
        let ended = await worker.waitForExit(sourceLocation: sourceLocation)
        #expect(
            ended == WorkerProcess.Exit(status: code, signaled: false), "worker \(worker.name)",
            sourceLocation: sourceLocation)
    }

    @Test("killed after step 2's checkpoint: the restart finishes and every step's effect ran exactly once")
    func killAfterCheckpoint() async throws {
        let database = try await database("crash_after")
        let id = "after-2"
        let first = try WorkerProcess("first", workerFlags(database, id: id) + ["--start", "--pause-after", "2"])
        #expect(await first.waitFor(line: "AFTER_STEP 2") != nil)
        await first.kill()

        // What the kill left: two checkpoints, two effects, a PENDING row still owned by the dead run.
        #expect(try await database.steps(id).map { "\($0.id):\($0.name)" } == ["1:step-1", "2:step-2"])
        #expect(try await database.ledger(id) == [1: 1, 2: 1])
        #expect(try await database.status(id) == "PENDING")
        #expect(
            try await database.value(
                "SELECT owner_xid IS NOT NULL FROM dbos.workflow_status WHERE workflow_uuid = $1", [id]) == "t")

        let second = try WorkerProcess("restart", workerFlags(database, id: id))
        #expect(await second.waitFor(line: "RESULT") == "RESULT 6")
        await expectCleanExit(second)
        #expect(second.lines(startingWith: "BODY").count == 1)
        #expect(second.lines(startingWith: "IN_STEP") == ["IN_STEP 3"])  // steps 1 and 2 were replayed
        #expect(try await database.ledger(id) == [1: 1, 2: 1, 3: 1])
        let row = try #require(
            try await database.query(
                "SELECT status, recovery_attempts, owner_xid, executor_id FROM dbos.workflow_status WHERE workflow_uuid = $1",
                [id]
            ).first)
        #expect(row.values == ["SUCCESS", "2", nil, "crash-worker"])
        #expect(
            try await database.value("SELECT output FROM dbos.workflow_output WHERE workflow_uuid = $1", [id]) == "6")

        // A finished workflow is not run again by a later start of the same ID.
        let third = try WorkerProcess("late start", workerFlags(database, id: id) + ["--start"])
        #expect(await third.waitFor(line: "RESULT") == "RESULT 6")
        await expectCleanExit(third)
        #expect(third.lines(startingWith: "BODY").isEmpty)
        #expect(try await database.ledger(id) == [1: 1, 2: 1, 3: 1])
    }

    @Test(
        "killed inside step 2 after its effect: the restart runs step 2 again and nothing else (at-least-once window)")
    func killInsideStep() async throws {
        let database = try await database("crash_in")
        let id = "in-2"
        let first = try WorkerProcess("first", workerFlags(database, id: id) + ["--start", "--pause-in", "2"])
        #expect(await first.waitFor(line: "IN_STEP 2") != nil)
        await first.kill()
        #expect(try await database.steps(id).map(\.id) == [1])
        #expect(try await database.ledger(id) == [1: 1, 2: 1])

        let second = try WorkerProcess("restart", workerFlags(database, id: id))
        #expect(await second.waitFor(line: "RESULT") == "RESULT 6")
        await expectCleanExit(second)
        #expect(second.lines(startingWith: "IN_STEP") == ["IN_STEP 2", "IN_STEP 3"])
        #expect(try await database.ledger(id) == [1: 1, 2: 2, 3: 1])
        #expect(try await database.steps(id).map { "\($0.id):\($0.name)" } == ["1:step-1", "2:step-2", "3:step-3"])
    }

    @Test("killed before any checkpoint: the restart runs the workflow from its recorded input")
    func killBeforeAnyCheckpoint() async throws {
        let database = try await database("crash_before")
        let id = "before-any"
        let first = try WorkerProcess("first", workerFlags(database, id: id) + ["--start", "--pause-in", "1"])
        #expect(await first.waitFor(line: "IN_STEP 1") != nil)
        await first.kill()
        #expect(try await database.steps(id).isEmpty)
        #expect(try await database.status(id) == "PENDING")
        #expect(
            try await database.value("SELECT inputs FROM dbos.workflow_input WHERE workflow_uuid = $1", [id])?.contains(
                #""steps":3"#) == true)

        let second = try WorkerProcess("restart", workerFlags(database, id: id))
        #expect(await second.waitFor(line: "RESULT") == "RESULT 6")
        await expectCleanExit(second)
        #expect(second.lines(startingWith: "IN_STEP") == ["IN_STEP 1", "IN_STEP 2", "IN_STEP 3"])
        #expect(try await database.ledger(id) == [1: 2, 2: 1, 3: 1])
        #expect(
            try await database.value(
                "SELECT recovery_attempts FROM dbos.workflow_status WHERE workflow_uuid = $1", [id]) == "2")
    }

    @Test(
        "killed again and again, at step 1, 2 and 3 in turn: every restart goes on from the last checkpoint",
        .serialized, arguments: ["--pause-after", "--pause-in"])
    func killRepeatedly(mode: String) async throws {
        let database = try await database("crash_loop")
        let id = "loop"
        for k in 1...3 {
            let worker = try WorkerProcess(
                "run \(k)", workerFlags(database, id: id) + (k == 1 ? ["--start"] : []) + [mode, "\(k)"])
            #expect(await worker.waitFor(line: mode == "--pause-after" ? "AFTER_STEP \(k)" : "IN_STEP \(k)") != nil)
            // Only the step this run reached ran its body here; earlier ones were replayed (or re-run if unrecorded).
            let ran = worker.lines(startingWith: "IN_STEP")
            #expect(
                ran == (mode == "--pause-after" || k == 1 ? ["IN_STEP \(k)"] : ["IN_STEP \(k - 1)", "IN_STEP \(k)"]),
                "run \(k)")
            await worker.kill()
            #expect(
                try await database.steps(id).count == (mode == "--pause-after" ? k : k - 1),
                "checkpoints after kill \(k)")
        }
        let last = try WorkerProcess("last", workerFlags(database, id: id))
        #expect(await last.waitFor(line: "RESULT") == "RESULT 6")
        await expectCleanExit(last)
        let once = mode == "--pause-after"
        #expect(try await database.ledger(id) == (once ? [1: 1, 2: 1, 3: 1] : [1: 2, 2: 2, 3: 2]))
        #expect(
            try await database.value(
                "SELECT recovery_attempts FROM dbos.workflow_status WHERE workflow_uuid = $1", [id]) == "4")
        #expect(try await database.status(id) == "SUCCESS")
    }

    @Test("restarted with renamed steps, the workflow ends ERROR as non-deterministic and runs nothing more")
    func nonDeterminism() async throws {
        let database = try await database("crash_nondet")
        let id = "renamed"
        let first = try WorkerProcess("first", workerFlags(database, id: id) + ["--start", "--pause-after", "1"])
        #expect(await first.waitFor(line: "AFTER_STEP 1") != nil)
        await first.kill()

        let second = try WorkerProcess("changed code", workerFlags(database, id: id) + ["--step-prefix", "other"])
        let line = try #require(await second.waitFor(line: "ERROR"))
        await expectCleanExit(second, code: 1)
        // handle.result() reports the library's own reason for ending the run.
        #expect(line.hasPrefix("ERROR nonDeterministicWorkflow "))
        #expect(line.contains("'step-1'") && line.contains("'other-1'"))
        #expect(second.lines(startingWith: "IN_STEP").isEmpty)
        #expect(second.lines(startingWith: "RESULT").isEmpty)

        #expect(try await database.status(id) == "ERROR")
        let error = try #require(try await database.workflowError(id))
        #expect(error["code"] as? String == "nonDeterministicWorkflow")
        #expect(error["name"] as? String == "DurableError")
        #expect((error["message"] as? String)?.contains("recorded as 'step-1'") == true)
        #expect(
            try await database.value("SELECT output FROM dbos.workflow_output WHERE workflow_uuid = $1", [id]) == nil)
        #expect(try await database.ledger(id) == [1: 1])
        #expect(try await database.steps(id).map(\.name) == ["step-1"])
    }

    @Test("a workflow killed on every run is set aside as MAX_RECOVERY_ATTEMPTS_EXCEEDED after its allowed recoveries")
    func deadLetter() async throws {
        let database = try await database("crash_dead")
        let id = "doomed"
        let limit = ["--max-recovery-attempts", "1"]
        var runs = 0
        var setAsideOnRun: Int?
        for attempt in 1...5 {
            let worker = try WorkerProcess(
                "attempt \(attempt)",
                workerFlags(database, id: id) + limit + (attempt == 1 ? ["--start"] : []) + ["--pause-after", "1"])
            let line = try #require(await worker.waitFor(anyOf: ["AFTER_STEP 1", "ERROR"]))
            if line.hasPrefix("AFTER_STEP") {
                runs += 1
                await worker.kill()
                continue
            }
            #expect(line.hasPrefix("ERROR maxRecoveryAttemptsExceeded "), "\(line)")
            #expect(worker.lines(startingWith: "BODY").isEmpty)
            await expectCleanExit(worker, code: 1)
            setAsideOnRun = attempt
            break
        }
        // The first run plus one allowed recovery; the second recovery is refused.
        #expect(runs == 2)
        #expect(setAsideOnRun == 3)
        let row = try #require(
            try await database.query(
                "SELECT status, recovery_attempts, owner_xid FROM dbos.workflow_status WHERE workflow_uuid = $1", [id]
            ).first)
        #expect(row.values == ["MAX_RECOVERY_ATTEMPTS_EXCEEDED", "3", nil])
        #expect(try await database.ledger(id) == [1: 1])

        // Set aside means left alone: a further restart does not run it and reports the same.
        let before = try await snapshot(database, id)
        let later = try WorkerProcess("later", workerFlags(database, id: id) + limit)
        #expect(await later.waitFor(line: "ERROR")?.hasPrefix("ERROR maxRecoveryAttemptsExceeded ") == true)
        await expectCleanExit(later, code: 1)
        #expect(later.lines(startingWith: "BODY").isEmpty)
        #expect(try await snapshot(database, id) == before)
    }

    @Test("a PENDING workflow whose name the restarted process does not register is logged and left untouched")
    func unknownWorkflowName() async throws {
        let database = try await database("crash_unknown")
        let id = "stranger"
        let first = try WorkerProcess("first", workerFlags(database, id: id) + ["--start", "--pause-after", "1"])
        #expect(await first.waitFor(line: "AFTER_STEP 1") != nil)
        await first.kill()
        try await database.query(
            "UPDATE dbos.workflow_status SET name = 'not-registered' WHERE workflow_uuid = $1", [id])
        let before = try #require(try await snapshot(database, id))

        let second = try WorkerProcess("restart", workerFlags(database, id: id))
        #expect(await second.waitFor(line: "READY") != nil)
        // It polls for the result, which never comes; give recovery ample time to (wrongly) touch the row.
        try await Task.sleep(for: .seconds(1))
        #expect(second.isRunning, "the worker must not crash on an unknown workflow name")
        // The warning comes on stderr, read by its own thread: allow it to lag behind stdout's READY.
        var warned = false
        for _ in 0..<200 where !warned {
            warned = second.logLines.contains { $0.contains("no registered code") && $0.contains(id) }
            if !warned { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(warned, "\(second.logLines)")
        #expect(try await snapshot(database, id) == before)
        #expect(second.lines(startingWith: "BODY").isEmpty)
        await second.kill()
        #expect(try await database.ledger(id) == [1: 1])
        #expect(try await database.steps(id).count == 1)

        // Nothing was damaged: with its name back, the next restart finishes it.
        try await database.query("UPDATE dbos.workflow_status SET name = 'ledger' WHERE workflow_uuid = $1", [id])
        let third = try WorkerProcess("restart with the name back", workerFlags(database, id: id))
        #expect(await third.waitFor(line: "RESULT") == "RESULT 6")
        await expectCleanExit(third)
        #expect(try await database.ledger(id) == [1: 1, 2: 1, 3: 1])
        #expect(
            try await database.value(
                "SELECT recovery_attempts FROM dbos.workflow_status WHERE workflow_uuid = $1", [id]) == "2")
    }

    @Test(
        "two processes starting one ID at the same moment: one body run, one result for both",
        .serialized, arguments: [false, true])
    func concurrentDuplicateStart(schemaReady: Bool) async throws {
        let database = try await database("crash_dup")
        if schemaReady {
            // Both processes then go straight to the start instead of racing through the schema migration first.
            let migrator = makeEngineRuntime(database, executor: "migrator") { _ in }
            try await migrator.launch()
            await migrator.shutdown()
        }
        let id = "twice"
        let workers = try ["alpha", "beta"].map {
            try WorkerProcess($0, workerFlags(database, id: id, executor: $0) + ["--start"])
        }
        for worker in workers {
            #expect(await worker.waitFor(line: "RESULT") == "RESULT 6", "worker \(worker.name)")
            await expectCleanExit(worker)
        }
        let bodies = workers.flatMap { worker in worker.lines(startingWith: "BODY").map { _ in worker.name } }
        #expect(bodies.count == 1, "bodies ran in \(bodies)")
        #expect(try await database.ledger(id) == [1: 1, 2: 1, 3: 1])
        let row = try #require(
            try await database.query(
                "SELECT count(*) OVER (), executor_id, recovery_attempts, status FROM dbos.workflow_status WHERE workflow_uuid = $1",
                [id]
            ).first)
        #expect(row.values == ["1", bodies.first, "1", "SUCCESS"])
        #expect(try await database.steps(id).count == 3)
    }
}
