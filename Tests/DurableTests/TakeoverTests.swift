import Durable
import Foundation
import Testing

/// A worker SIGKILLed and never restarted: a live executor notices its silence and finishes its workflows.
@Suite("Takeover of a dead executor's workflows")
struct TakeoverTests {
    @Test("a live executor resumes the workflows of one that was SIGKILLed and never came back")
    func takeover() async throws {
        let url = try await SharedDatabaseURL.fresh("takeover")
        let harness = MessagingHarness(url: url, runtime: MessagingHarness.makeRuntime(url: url, executorID: "observer") { _ in })
        _ = try await harness.query("CREATE SCHEMA dbos_ledger")
        _ = try await harness.query("CREATE TABLE dbos_ledger.ledger (workflow_id text, step int)")
        let common = ["--url", url, "--workflow", "orphan", "--steps", "3", "--takeover-ms", "1500"]

        let victim = try ChildWorker(common + ["--executor", "victim", "--start", "--pause-after", "1"])
        #expect(await victim.waitFor("AFTER_STEP 1") != nil)
        victim.kill()

        let rescuer = try ChildWorker(common + ["--executor", "rescuer"])
        #expect(await rescuer.waitFor("RESULT", timeout: .seconds(30)) == "RESULT 6")
        rescuer.waitUntilExit()

        let row = try await harness.query("SELECT status, executor_id, recovery_attempts FROM dbos.workflow_status WHERE workflow_uuid = 'orphan'")
        #expect(row.first?.string(0) == "SUCCESS")
        #expect(row.first?.string(1) == "rescuer")
        #expect(row.first?.int(2) == 2)
        let ledger = try await harness.query("SELECT step, count(*) FROM dbos_ledger.ledger WHERE workflow_id = 'orphan' GROUP BY step ORDER BY step")
        #expect(ledger.rows.map { $0.int(1) } == [1, 1, 1])
        let executors = try await harness.query("SELECT executor_id FROM dbos.durable_executors ORDER BY 1")
        #expect(!executors.rows.contains { $0.string(0) == "victim" })
    }
}
