import Durable
import Foundation
import Testing

/// The core promise across real SIGKILLs of a worker process: completed steps never run again.
@Suite("Recovery after SIGKILL")
struct CoreCrashTests {
    struct Setup {
        let url: String
        let harness: MessagingHarness
        func flags(_ id: String, executor: String = "crash") -> [String] {
            ["--url", url, "--executor", executor, "--workflow", id, "--steps", "3"]
        }
        func ledger(_ id: String) async throws -> [Int] {
            let rows = try await harness.query("SELECT step, count(*) FROM dbos_ledger.ledger WHERE workflow_id = $1 GROUP BY step ORDER BY step", [id])
            return rows.rows.map { $0.int(1) ?? -1 }
        }
        func status(_ id: String) async throws -> String? {
            try await harness.query("SELECT status FROM dbos.workflow_status WHERE workflow_uuid = $1", [id]).first?.string(0)
        }
    }

    func setUp(_ prefix: String) async throws -> Setup {
        let url = try await SharedDatabaseURL.fresh(prefix)
        let harness = MessagingHarness(url: url, runtime: MessagingHarness.makeRuntime(url: url, executorID: "observer") { _ in })
        _ = try await harness.query("CREATE SCHEMA dbos_ledger")
        _ = try await harness.query("CREATE TABLE dbos_ledger.ledger (workflow_id text, step int)")
        return Setup(url: url, harness: harness)
    }

    @Test("killed after a step's checkpoint: no completed step runs again", arguments: [1, 2, 3])
    func killAfterCheckpoint(step: Int) async throws {
        let s = try await setUp("crash_after")
        let first = try ChildWorker(s.flags("w") + ["--start", "--pause-after", "\(step)"])
        #expect(await first.waitFor("AFTER_STEP \(step)") != nil)
        first.kill()
        let second = try ChildWorker(s.flags("w"))
        #expect(await second.waitFor("RESULT") == "RESULT 6")
        second.waitUntilExit()
        #expect(try await s.ledger("w") == [1, 1, 1])
        #expect(try await s.status("w") == "SUCCESS")
    }

    @Test("killed inside a step, after its effect and before its checkpoint: only that step runs again", arguments: [1, 2, 3])
    func killInsideStep(step: Int) async throws {
        let s = try await setUp("crash_in")
        let first = try ChildWorker(s.flags("w") + ["--start", "--pause-in", "\(step)"])
        #expect(await first.waitFor("IN_STEP \(step)") != nil)
        first.kill()
        let second = try ChildWorker(s.flags("w"))
        #expect(await second.waitFor("RESULT") == "RESULT 6")
        second.waitUntilExit()
        var expected = [1, 1, 1]
        expected[step - 1] = 2  // the documented at-least-once window of a plain step
        #expect(try await s.ledger("w") == expected)
    }

    @Test("a recorded step name that differs from the code's fails the workflow as non-deterministic")
    func nonDeterminism() async throws {
        let s = try await setUp("crash_nondeterminism")
        let first = try ChildWorker(s.flags("w") + ["--start", "--pause-after", "1"])
        #expect(await first.waitFor("AFTER_STEP 1") != nil)
        first.kill()
        let second = try ChildWorker(s.flags("w") + ["--step-prefix", "renamed"])
        let line = await second.waitFor("ERROR")
        #expect(line?.contains("nonDeterministicWorkflow") == true || line?.contains("workflowFailed") == true)
        second.waitUntilExit()
        #expect(try await s.status("w") == "ERROR")
        let error = try await s.harness.query("SELECT error FROM dbos.workflow_output WHERE workflow_uuid = 'w'")
        #expect(error.first?.string(0)?.contains("nonDeterministicWorkflow") == true)
        #expect(try await s.ledger("w") == [1])  // nothing ran after the mismatch
    }

    @Test("a workflow recovered too often becomes MAX_RECOVERY_ATTEMPTS_EXCEEDED instead of crash-looping")
    func deadLetter() async throws {
        let s = try await setUp("crash_dead_letter")
        let limit = ["--max-recovery-attempts", "1"]
        let first = try ChildWorker(s.flags("w") + limit + ["--start", "--pause-in", "1"])
        #expect(await first.waitFor("IN_STEP 1") != nil)
        first.kill()
        let second = try ChildWorker(s.flags("w") + limit + ["--pause-in", "1"])
        #expect(await second.waitFor("IN_STEP 1") != nil)
        second.kill()
        let third = try ChildWorker(s.flags("w") + limit)
        let line = await third.waitFor("ERROR")
        #expect(line?.contains("maxRecoveryAttemptsExceeded") == true)
        third.waitUntilExit()
        #expect(try await s.status("w") == "MAX_RECOVERY_ATTEMPTS_EXCEEDED")
        #expect(try await s.ledger("w") == [2])
    }

    @Test("a pending workflow whose name this process does not know is left alone")
    func unknownName() async throws {
        let s = try await setUp("crash_unknown")
        let first = try ChildWorker(s.flags("w") + ["--start", "--pause-after", "1"])
        #expect(await first.waitFor("AFTER_STEP 1") != nil)
        first.kill()
        _ = try await s.harness.query("UPDATE dbos.workflow_status SET name = 'not-registered' WHERE workflow_uuid = 'w'")
        let before = try await s.harness.query("SELECT status, owner_xid, recovery_attempts FROM dbos.workflow_status WHERE workflow_uuid = 'w'")
        let second = try ChildWorker(s.flags("w"))
        #expect(await second.waitFor("READY") != nil)
        try await Task.sleep(for: .milliseconds(500))
        second.kill()
        let after = try await s.harness.query("SELECT status, owner_xid, recovery_attempts FROM dbos.workflow_status WHERE workflow_uuid = 'w'")
        #expect(after.first?.values == before.first?.values)
        #expect(after.first?.string(0) == "PENDING")
        #expect(try await s.ledger("w") == [1])
    }

    @Test("two processes starting the same ID at the same moment run the body once")
    func concurrentDuplicateStart() async throws {
        let s = try await setUp("crash_duplicate")
        let workers = try ["one", "two"].map { try ChildWorker(s.flags("same", executor: $0) + ["--start"]) }
        for worker in workers {
            #expect(await worker.waitFor("RESULT") == "RESULT 6")
            worker.waitUntilExit()
        }
        let bodies = workers.map { $0.output.filter { $0.hasPrefix("BODY") }.count }.reduce(0, +)
        #expect(bodies == 1)
        #expect(try await s.ledger("same") == [1, 1, 1])
    }
}
