import Durable
import Foundation
import LibPQ
import TestSupport
import Testing

/// The engine in one process against a real Postgres: idempotent starts, conflicts, results read elsewhere,
/// failing and Void steps, status fields, step numbering rules, in-process recovery, and the rows DBOS expects.
@Suite("Engine semantics")
struct EngineSemanticsTests {
    /// A launched runtime with every fixture registered, on a fresh database.
    func launched(_ prefix: String, executor: String = "engine") async throws -> (TestDatabase, DurableRuntime) {
        let database = try await TestDatabase.fresh(prefix)
        let runtime = makeEngineRuntime(database, executor: executor, register: registerEngineFixtures)
        try await runtime.launch()
        return (database, runtime)
    }

    // MARK: - Idempotent start

    @Test("starting one ID many times, while it runs and after it finished, runs its body once and returns one result")
    func idempotentStart() async throws {
        let (database, runtime) = try await launched("engine_idem")
        let id = uniqueID("idem")
        let first = try await runtime.start(EngineCounted.self, HoldInput(steps: 3, holdAfter: 1), id: id)
        #expect(first.id == id)
        #expect(await EngineGates.shared.waitForArrival(id))

        // Concurrent starts of the same ID while the first run is held after step 1.
        let again = try await withThrowingTaskGroup(of: WorkflowHandle<Int>.self) { group in
            for _ in 0..<5 {
                group.addTask { try await runtime.start(EngineCounted.self, HoldInput(steps: 3, holdAfter: 1), id: id) }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(again.map(\.id) == Array(repeating: id, count: 5))
        EngineGates.shared.open(id)
        #expect(try await first.result() == 6)
        for handle in again { #expect(try await handle.result() == 6) }

        // After it finished: another input under the same ID gets the recorded result, and nothing runs.
        let late = try await runtime.start(EngineCounted.self, HoldInput(steps: 10, holdAfter: nil), id: id)
        #expect(try await late.result() == 6)
        #expect(RunCounts.count("body:\(id)") == 1)
        for k in 1...3 { #expect(RunCounts.count("step:\(id):\(k)") == 1) }
        #expect(
            try await database.value("SELECT count(*) FROM dbos.workflow_status WHERE workflow_uuid = $1", [id]) == "1")
        #expect(
            try await database.value("SELECT count(*) FROM dbos.operation_outputs WHERE workflow_uuid = $1", [id])
                == "3")
        // The recorded input is the first start's, not the late one's.
        #expect(
            try await database.value("SELECT inputs FROM dbos.workflow_input WHERE workflow_uuid = $1", [id])?.contains(
                #""steps":3"#) == true)
        await runtime.shutdown()
    }

    @Test("two runtimes with different executor IDs starting one ID at the same moment run its body once")
    func idempotentStartAcrossRuntimes() async throws {
        let database = try await TestDatabase.fresh("engine_idem_two")
        let one = makeEngineRuntime(database, executor: "one", register: registerEngineFixtures)
        let two = makeEngineRuntime(database, executor: "two", register: registerEngineFixtures)
        try await one.launch()
        try await two.launch()
        for round in 0..<5 {
            let id = uniqueID("race-\(round)")
            async let a = one.start(EngineCounted.self, HoldInput(steps: 2, holdAfter: nil), id: id)
            async let b = two.start(EngineCounted.self, HoldInput(steps: 2, holdAfter: nil), id: id)
            let (handleA, handleB) = try await (a, b)
            #expect(try await handleA.result() == 3)
            #expect(try await handleB.result() == 3)
            #expect(RunCounts.count("body:\(id)") == 1)
            #expect(RunCounts.count("step:\(id):1") == 1)
            let executor = try await database.value(
                "SELECT executor_id FROM dbos.workflow_status WHERE workflow_uuid = $1", [id])
            #expect(executor == "one" || executor == "two")
        }
        await one.shutdown()
        await two.shutdown()
    }

    // MARK: - Conflicts

    @Test("an ID held by another workflow name is a conflict, while that workflow runs and after it finished")
    func conflict() async throws {
        let (database, runtime) = try await launched("engine_conflict")
        let id = uniqueID("taken")
        let owner = try await runtime.start(EngineCounted.self, HoldInput(steps: 1, holdAfter: 1), id: id)
        #expect(await EngineGates.shared.waitForArrival(id))

        let whileRunning = await expectDurableError(.conflictingWorkflowID) {
            try await runtime.start(EngineOther.self, HoldInput(steps: 1, holdAfter: nil), id: id)
        }
        #expect(whileRunning?.message.contains("engine-counted") == true)
        #expect(whileRunning?.workflowID == id)

        EngineGates.shared.open(id)
        #expect(try await owner.result() == 1)
        await expectDurableError(.conflictingWorkflowID) {
            try await runtime.start(EngineOther.self, HoldInput(steps: 1, holdAfter: nil), id: id)
        }
        // A second runtime (another process) sees the same conflict.
        let elsewhere = makeEngineRuntime(database, executor: "elsewhere", register: registerEngineFixtures)
        await expectDurableError(.conflictingWorkflowID) {
            try await elsewhere.start(EngineOther.self, HoldInput(steps: 1, holdAfter: nil), id: id)
        }
        #expect(RunCounts.count("other:\(id)") == 0)
        #expect(
            try await database.value("SELECT name FROM dbos.workflow_status WHERE workflow_uuid = $1", [id])
                == "engine-counted")
        await elsewhere.shutdown()
        await runtime.shutdown()
    }

    // MARK: - Results from elsewhere

    @Test("another runtime on the same database waits for and reads a result and an error by ID")
    func resultFromAnotherRuntime() async throws {
        let (database, writer) = try await launched("engine_elsewhere", executor: "writer")
        // The reader registers nothing: it only reads rows.
        let reader = makeEngineRuntime(database, executor: "reader") { _ in }
        let id = uniqueID("shared")
        _ = try await writer.start(EngineCounted.self, HoldInput(steps: 2, holdAfter: 1), id: id)
        #expect(await EngineGates.shared.waitForArrival(id))

        let remote: WorkflowHandle<Int> = reader.handle(for: id)
        let waiting = Task {
            try await remote.result(minimumPollingInterval: .milliseconds(5), maximumPollingInterval: .milliseconds(50))
        }
        try await Task.sleep(for: .milliseconds(300))
        #expect(try await remote.status().state == .pending)
        EngineGates.shared.open(id)
        #expect(try await waiting.value == 3)
        let status = try await remote.status()
        #expect(status.state == .success)
        #expect(status.executorID == "writer")
        #expect(RunCounts.count("body:\(id)") == 1)

        let failedID = uniqueID("failed")
        _ = try await writer.start(EngineFailing.self, FailInput(catchFailure: false, hold: false), id: failedID)
        let failure = await expectDurableError(.workflowFailed) {
            try await reader.handle(for: failedID, resultType: String.self).result()
        }
        #expect(failure?.errorName == "EngineRefusal")
        #expect(failure?.message.contains("refused: no budget") == true)
        await expectDurableError(.workflowNotFound) {
            try await reader.handle(for: "no-such-workflow", resultType: Int.self).result()
        }
        await reader.shutdown()
        await writer.shutdown()
    }

    // MARK: - Failing steps

    @Test("a failing step records its error as DBOS JSON; the workflow fails with the Swift error's type name")
    func failingStep() async throws {
        let (database, runtime) = try await launched("engine_fail")
        let id = uniqueID("declined")
        let handle = try await runtime.start(EngineFailing.self, FailInput(catchFailure: false, hold: false), id: id)
        let error = await expectDurableError(.workflowFailed) { try await handle.result() }
        #expect(error?.errorName == "EngineRefusal")
        #expect(error?.workflowID == id)
        #expect(error?.message.contains("refused: no budget") == true)

        // The step row: function 2, no output, the error as {"name","message","code"}.
        let step = try #require(
            try await database.query(
                "SELECT function_name, output, error, serialization FROM dbos.operation_outputs WHERE workflow_uuid = $1 AND function_id = 2",
                [id]
            ).first)
        #expect(step.string(0) == "charge")
        #expect(step.string(1) == nil)
        #expect(step.string(3) == "portable_json")
        let stepError = try #require(step.string(2))
        let recorded = try #require(try JSONSerialization.jsonObject(with: Data(stepError.utf8)) as? [String: Any])
        #expect(Set(recorded.keys) == ["name", "message", "code"])
        #expect(recorded["name"] as? String == "EngineRefusal")
        #expect(recorded["message"] as? String == "refused: no budget")
        #expect(recorded["code"] is NSNull)

        // The workflow's outcome: ERROR, the same error name, nothing after the failed step ran.
        #expect(try await database.status(id) == "ERROR")
        let outcome = try #require(try await database.workflowError(id))
        #expect(outcome["name"] as? String == "EngineRefusal")
        #expect(outcome["code"] as? String == "stepFailed")
        #expect(
            try await database.value("SELECT output FROM dbos.workflow_output WHERE workflow_uuid = $1", [id]) == nil)
        #expect(try await database.steps(id).map(\.name) == ["reserve", "charge"])
        #expect(RunCounts.count("ship:\(id)") == 0)
        #expect(try await runtime.status(of: id)?.state == .error)
        await runtime.shutdown()
    }

    @Test("a recorded step failure replays as the same error after a restart, without running the step again")
    func failedStepReplays() async throws {
        let database = try await TestDatabase.fresh("engine_fail_replay")
        let first = makeEngineRuntime(database, executor: "replayer", register: registerEngineFixtures)
        try await first.launch()
        let id = uniqueID("caught")
        _ = try await first.start(EngineFailing.self, FailInput(catchFailure: true, hold: true), id: id)
        #expect(await EngineGates.shared.waitForArrival(id))
        await first.shutdown()  // the held run is interrupted and stays PENDING, as after a crash
        #expect(try await database.status(id) == "PENDING")

        EngineGates.shared.open(id)
        let second = makeEngineRuntime(database, executor: "replayer", register: registerEngineFixtures)
        try await second.launch()
        #expect(try await second.handle(for: id, resultType: String.self).result() == "stepFailed/EngineRefusal")
        #expect(RunCounts.count("body:\(id)") == 2)
        #expect(RunCounts.count("reserve:\(id)") == 1)
        #expect(RunCounts.count("charge:\(id)") == 1)
        #expect(RunCounts.count("ship:\(id)") == 1)
        #expect(try await database.steps(id).map(\.name) == ["reserve", "charge", "ship"])
        #expect(
            try await database.value(
                "SELECT recovery_attempts FROM dbos.workflow_status WHERE workflow_uuid = $1", [id]) == "2")
        await second.shutdown()
    }

    // MARK: - Void steps and in-process recovery

    @Test("Void steps record JSON null and replay without running again")
    func voidSteps() async throws {
        let database = try await TestDatabase.fresh("engine_void")
        let first = makeEngineRuntime(database, executor: "void", register: registerEngineFixtures)
        try await first.launch()
        let id = uniqueID("void")
        _ = try await first.start(EngineVoidSteps.self, true, id: id)
        #expect(await EngineGates.shared.waitForArrival(id))
        await first.shutdown()
        let recorded = try await database.query(
            "SELECT function_id, output, error FROM dbos.operation_outputs WHERE workflow_uuid = $1 ORDER BY 1", [id])
        #expect(recorded.rows.map(\.values) == [["1", "null", nil], ["2", "null", nil]])

        EngineGates.shared.open(id)
        let second = makeEngineRuntime(database, executor: "void", register: registerEngineFixtures)
        try await second.launch()
        #expect(try await second.handle(for: id, resultType: Int.self).result() == 3)
        #expect(RunCounts.count("void-1:\(id)") == 1)
        #expect(RunCounts.count("void-2:\(id)") == 1)
        #expect(RunCounts.count("int-3:\(id)") == 1)
        #expect(RunCounts.count("body:\(id)") == 2)
        let all = try await database.query(
            "SELECT output FROM dbos.operation_outputs WHERE workflow_uuid = $1 ORDER BY function_id", [id])
        #expect(all.rows.map { $0.string(0) } == ["null", "null", "3"])
        await second.shutdown()
    }

    @Test("a runtime restarted after a shutdown resumes each held workflow from its last checkpoint")
    func recoveryAfterShutdown() async throws {
        let database = try await TestDatabase.fresh("engine_recover")
        let first = makeEngineRuntime(database, executor: "recover", register: registerEngineFixtures)
        try await first.launch()
        let ids = (0..<3).map { uniqueID("held-\($0)") }
        for (index, id) in ids.enumerated() {
            _ = try await first.start(EngineCounted.self, HoldInput(steps: 4, holdAfter: index), id: id)
        }
        for id in ids { #expect(await EngineGates.shared.waitForArrival(id)) }
        await first.shutdown()
        for id in ids { #expect(try await database.status(id) == "PENDING") }
        for id in ids { EngineGates.shared.open(id) }

        // Another executor's runtime leaves them alone; their own executor resumes them.
        let stranger = makeEngineRuntime(database, executor: "stranger", register: registerEngineFixtures)
        try await stranger.launch()
        await stranger.shutdown()
        for id in ids { #expect(RunCounts.count("body:\(id)") == 1) }

        let second = makeEngineRuntime(database, executor: "recover", register: registerEngineFixtures)
        try await second.launch()
        for id in ids {
            #expect(try await second.handle(for: id, resultType: Int.self).result() == 10)
            #expect(RunCounts.count("body:\(id)") == 2)
            for k in 1...4 { #expect(RunCounts.count("step:\(id):\(k)") == 1, "step \(k) of \(id)") }
            #expect(try await database.steps(id).map(\.id) == [1, 2, 3, 4])
            let status = try #require(try await second.status(of: id))
            #expect(status.recoveryAttempts == 2)
            #expect(status.executorID == "recover")
        }
        await second.shutdown()
    }

    // MARK: - Status

    @Test("status() reports the row's fields while running and after it finished; unknown IDs are not found")
    func statusFields() async throws {
        let database = try await TestDatabase.fresh("engine_status")
        let runtime = makeEngineRuntime(
            database, executor: "status-executor", applicationVersion: "v-42", register: registerEngineFixtures)
        try await runtime.launch()
        let id = uniqueID("status")
        let before = Date()
        let handle = try await runtime.start(EngineCounted.self, HoldInput(steps: 1, holdAfter: 1), id: id)
        #expect(await EngineGates.shared.waitForArrival(id))

        let running = try await handle.status()
        #expect(running.id == id)
        #expect(running.name == "engine-counted")
        #expect(running.state == .pending)
        #expect(running.state?.isFinal == false)
        #expect(running.rawState == "PENDING")
        #expect(running.executorID == "status-executor")
        #expect(running.applicationVersion == "v-42")
        #expect(running.recoveryAttempts == 1)
        #expect(running.queueName == nil)
        // Sanity of the stored clock (the server's), not a speed bound.
        #expect(abs(running.createdAt.timeIntervalSince(before)) < 300)
        #expect(running.createdAtMilliseconds <= running.updatedAtMilliseconds)

        EngineGates.shared.open(id)
        #expect(try await handle.result() == 1)
        let done = try #require(try await runtime.status(of: id))
        #expect(done.state == .success)
        #expect(done.state?.isFinal == true)
        #expect(done.rawState == "SUCCESS")
        #expect(done.createdAtMilliseconds == running.createdAtMilliseconds)
        #expect(done.updatedAtMilliseconds >= running.updatedAtMilliseconds)
        #expect(done.recoveryAttempts == 1)

        #expect(try await runtime.status(of: "no-such-workflow") == nil)
        await expectDurableError(.workflowNotFound) {
            try await runtime.handle(for: "no-such-workflow", resultType: Int.self).status()
        }
        await runtime.shutdown()
    }

    // MARK: - Step numbering

    @Test(
        "a step called from a child task throws stepOutsideWorkflowTask and takes no step number",
        .serialized, arguments: ["asyncLet", "taskGroup", "unstructured"])
    func stepFromChildTask(mode: String) async throws {
        let (database, runtime) = try await launched("engine_child_task")
        let caughtID = uniqueID("caught-\(mode)")
        let result = try await runtime.start(
            EngineChildTask.self, ChildTaskInput(mode: mode, catchRefusal: true), id: caughtID
        ).result()
        #expect(result == "stepOutsideWorkflowTask|7")
        #expect(RunCounts.count("child:\(caughtID)") == 0)
        // The refused call recorded nothing and the next step from the workflow's task is still step 1.
        #expect(try await database.steps(caughtID).map { "\($0.id):\($0.name)" } == ["1:after"])

        let uncaughtID = uniqueID("uncaught-\(mode)")
        let handle = try await runtime.start(
            EngineChildTask.self, ChildTaskInput(mode: mode, catchRefusal: false), id: uncaughtID)
        let error = await expectDurableError(.stepOutsideWorkflowTask) { try await handle.result() }
        #expect(error?.message.contains("child task") == true)
        #expect(try await database.workflowError(uncaughtID)?["code"] as? String == "stepOutsideWorkflowTask")
        #expect(try await database.steps(uncaughtID).isEmpty)
        #expect(RunCounts.count("child:\(uncaughtID)") == 0)
        await runtime.shutdown()
    }

    @Test("durable steps inside a step body are plain calls: they run once and record nothing")
    func nestedSteps() async throws {
        let (database, runtime) = try await launched("engine_nested")
        let id = uniqueID("nested")
        #expect(try await runtime.start(EngineNested.self, 20, id: id).result() == 22)
        #expect(try await database.steps(id).map { "\($0.id):\($0.name)" } == ["1:outer", "2:after"])
        #expect(
            try await database.value(
                "SELECT output FROM dbos.operation_outputs WHERE workflow_uuid = $1 AND function_id = 1", [id]) == "21")
        for part in ["outer", "inner", "inner-void", "inner-child"] {
            #expect(RunCounts.count("\(part):\(id)") == 1, "\(part)")
        }
        await runtime.shutdown()
    }

    // MARK: - Fatal errors

    @Test("a non-determinism error fails the workflow even when the body catches it and returns normally")
    func fatalErrorCannotBeSwallowed() async throws {
        let database = try await TestDatabase.fresh("engine_fatal")
        let id = uniqueID("renamed")
        let first = makeEngineRuntime(database, executor: "fatal") { $0.register(EngineRenamable(prefix: "before")) }
        try await first.launch()
        _ = try await first.start(EngineRenamable.self, true, id: id)
        #expect(await EngineGates.shared.waitForArrival(id))
        await first.shutdown()
        EngineGates.shared.open(id)

        // The same durable name, but the code now calls a different step at position 1.
        let second = makeEngineRuntime(database, executor: "fatal") { $0.register(EngineRenamable(prefix: "after")) }
        try await second.launch()
        let error = await expectDurableError(.nonDeterministicWorkflow) {
            try await second.handle(for: id, resultType: String.self).result()
        }
        #expect(error?.message.contains("'before-1'") == true)
        #expect(error?.message.contains("'after-1'") == true)
        #expect(try await database.status(id) == "ERROR")
        let recorded = try #require(try await database.workflowError(id))
        #expect(recorded["code"] as? String == "nonDeterministicWorkflow")
        #expect(
            try await database.value("SELECT output FROM dbos.workflow_output WHERE workflow_uuid = $1", [id]) == nil)
        #expect(RunCounts.count("renamable:\(id):before") == 1)
        #expect(RunCounts.count("renamable:\(id):after") == 0)
        #expect(try await database.steps(id).map(\.name) == ["before-1"])
        await second.shutdown()
    }

    // MARK: - Rows

    @Test("rows are written as DBOS 3.4.0 writes them, while running and after the end")
    func rowsAsDBOS() async throws {
        let (database, runtime) = try await launched("engine_rows", executor: "rows-executor")
        let id = uniqueID("rows")
        let sentAt = Date(timeIntervalSince1970: 1_767_323_045.678)  // 2026-01-02T03:04:05.678Z
        let parcel = Parcel(sku: "tea/green", weight: 2.5, sentAt: sentAt, tags: ["fragile", "ünïcode"])
        let handle = try await runtime.start(EngineShipping.self, parcel, id: id)
        #expect(await EngineGates.shared.waitForArrival(id))

        let statusColumns = """
            SELECT status, name, executor_id, application_version, recovery_attempts, serialization, creator_xid, owner_xid,
                   inputs, output, error, class_name, config_name, queue_name, completed_at, authenticated_user, priority
            FROM dbos.workflow_status WHERE workflow_uuid = $1
            """
        let running = try #require(try await database.query(statusColumns, [id]).first)
        #expect(running.string(0) == "PENDING")
        let creator = try #require(running.string(6))
        #expect(!creator.isEmpty)
        #expect(running.string(7) == creator)  // owned by the run that created it
        #expect(running.string(14) == nil)

        // The input: {"namedArgs":{},"positionalArgs":[<parcel>]}, dates RFC 3339 UTC with milliseconds.
        let inputText = try #require(
            try await database.value("SELECT inputs FROM dbos.workflow_input WHERE workflow_uuid = $1", [id]))
        let input = try #require(try JSONSerialization.jsonObject(with: Data(inputText.utf8)) as? [String: Any])
        #expect(Set(input.keys) == ["namedArgs", "positionalArgs"])
        #expect((input["namedArgs"] as? [String: Any])?.isEmpty == true)
        let arguments = try #require(input["positionalArgs"] as? [Any])
        #expect(arguments.count == 1)
        let argument = try #require(arguments.first as? [String: Any])
        #expect(argument["sku"] as? String == "tea/green")
        #expect(argument["sentAt"] as? String == "2026-01-02T03:04:05.678Z")
        #expect(argument["tags"] as? [String] == ["fragile", "ünïcode"])
        #expect(inputText.contains(#""sku":"tea/green""#))  // no escaped slashes

        EngineGates.shared.open(id)
        let label = try await handle.result()
        #expect(label == ShippingLabel(code: "tea/green-2500", printedAt: sentAt.addingTimeInterval(60)))

        let done = try #require(try await database.query(statusColumns, [id]).first)
        #expect(done.string(0) == "SUCCESS")
        #expect(done.string(1) == "engine-shipping")
        #expect(done.string(2) == "rows-executor")
        #expect(done.string(3) == "engine-tests")
        #expect(done.int(4) == 1)
        #expect(done.string(5) == "portable_json")
        #expect(done.string(6) == creator)
        #expect(done.string(7) == nil)  // owner_xid cleared at the end, as DBOS leaves it
        for (column, name) in [
            (8, "inputs"), (9, "output"), (10, "error"), (11, "class_name"), (12, "config_name"), (13, "queue_name"),
            (15, "authenticated_user"),
        ] {
            #expect(done.string(column) == nil, "workflow_status.\(name) must stay NULL")
        }
        #expect(done.string(14) != nil)
        #expect(done.int(16) == 0)

        let output = try #require(
            try await database.query("SELECT output, error FROM dbos.workflow_output WHERE workflow_uuid = $1", [id])
                .first)
        #expect(output.string(1) == nil)
        let outputText = try #require(output.string(0))
        let outputJSON = try #require(try JSONSerialization.jsonObject(with: Data(outputText.utf8)) as? [String: Any])
        #expect(outputJSON["code"] as? String == "tea/green-2500")
        #expect(outputJSON["printedAt"] as? String == "2026-01-02T03:05:05.678Z")

        let steps = try await database.query(
            """
            SELECT function_id, function_name, output, error, serialization, child_workflow_id,
                   started_at_epoch_ms IS NOT NULL AND completed_at_epoch_ms >= started_at_epoch_ms
            FROM dbos.operation_outputs WHERE workflow_uuid = $1 ORDER BY function_id
            """, [id])
        #expect(steps.rows.map { $0.int(0) } == [1, 2, 3])
        #expect(steps.rows.map { $0.string(1) } == ["weigh", "print-label", "notify"])
        #expect(steps.rows[0].string(2) == "2500")
        #expect(steps.rows[1].string(2)?.contains(#""printedAt":"2026-01-02T03:05:05.678Z""#) == true)
        #expect(steps.rows[2].string(2) == "null")
        for row in steps.rows {
            #expect(row.string(3) == nil)
            #expect(row.string(4) == "portable_json")
            #expect(row.string(5) == nil)
            #expect(row.bool(6) == true)
        }
        #expect(
            try await database.value(
                "SELECT count(*) FROM dbos.application_versions WHERE version_name = 'engine-tests'") == "1")
        await runtime.shutdown()
    }
}
