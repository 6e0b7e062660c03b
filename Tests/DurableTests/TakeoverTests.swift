import Durable
import Foundation
import Logging
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
        await victim.kill()

        let rescuer = try ChildWorker(common + ["--executor", "rescuer"])
        #expect(await rescuer.waitFor("RESULT", timeout: .seconds(30)) == "RESULT 6")
        await rescuer.waitUntilExit()

        let row = try await harness.query("SELECT status, executor_id, recovery_attempts FROM dbos.workflow_status WHERE workflow_uuid = 'orphan'")
        #expect(row.first?.string(0) == "SUCCESS")
        #expect(row.first?.string(1) == "rescuer")
        #expect(row.first?.int(2) == 2)
        let ledger = try await harness.query("SELECT step, count(*) FROM dbos_ledger.ledger WHERE workflow_id = 'orphan' GROUP BY step ORDER BY step")
        #expect(ledger.rows.map { $0.int(1) } == [1, 1, 1])
        let executors = try await harness.query("SELECT executor_id FROM dbos.durable_executors ORDER BY 1")
        #expect(!executors.rows.contains { $0.string(0) == "victim" })
    }

    @Test("a silent executor's workflow that the taker cannot run is not stranded: a process that registers it takes it later")
    func leftForOneWhoKnows() async throws {
        let url = try await SharedDatabaseURL.fresh("takeover_unknown")
        var quiet = Logger(label: "takeover-tests")
        quiet.logLevel = .critical
        func runtime(_ executor: String, register: (DurableRuntime) -> Void) -> DurableRuntime {
            let runtime = DurableRuntime(configuration: DurableConfiguration(
                databaseURL: url, executorID: executor, applicationVersion: "takeover", maxConnections: 4,
                heartbeatInterval: .milliseconds(200), takeoverAfter: .milliseconds(1_000)
            ), logger: quiet)
            register(runtime)
            return runtime
        }
        // The first runtime creates the schema; a dead executor ("ghost") then owns a PENDING workflow of a name
        // this runtime does not register, and last beat long ago.
        let unaware = runtime("unaware") { $0.register(TakeoverStranger.Known()) }
        try await unaware.launch()
        let harness = MessagingHarness(url: url, runtime: unaware)
        _ = try await harness.query("""
            INSERT INTO dbos.workflow_status (workflow_uuid, status, name, executor_id, application_version, owner_xid,
                recovery_attempts, serialization)
            VALUES ('haunted', 'PENDING', $1, 'ghost', 'takeover', 'ghost-token', 1, 'portable_json')
            """, [TakeoverStranger.name])
        _ = try await harness.query("INSERT INTO dbos.workflow_input (workflow_uuid, inputs) VALUES ('haunted', '{\"positionalArgs\":[20],\"namedArgs\":{}}')")
        _ = try await harness.query("INSERT INTO dbos.durable_executors (executor_id, application_version, last_heartbeat) VALUES ('ghost', 'takeover', 0)")

        // The unaware runtime's monitor finds the ghost silent, cannot run its workflow, and must keep the ghost
        // findable (this once deleted its heartbeat row, so nobody would ever look again).
        try await Task.sleep(for: .seconds(2))
        #expect(try await harness.query("SELECT count(*) FROM dbos.durable_executors WHERE executor_id = 'ghost'").first?.int(0) == 1)
        #expect(try await harness.query("SELECT executor_id FROM dbos.workflow_status WHERE workflow_uuid = 'haunted'").first?.string(0) == "ghost")

        let aware = runtime("aware") { $0.register(TakeoverStranger()) }
        try await aware.launch()
        // Bounded: with the ghost forgotten, nothing would ever run it and the wait would never end.
        var status: String?
        for _ in 0..<150 where status != "SUCCESS" {
            status = try await harness.query("SELECT status FROM dbos.workflow_status WHERE workflow_uuid = 'haunted'").first?.string(0)
            if status != "SUCCESS" { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(status == "SUCCESS")
        if status == "SUCCESS" {
            let result: Int = try await aware.handle(for: "haunted").result()
            #expect(result == 21)
        }
        // Emptied now, the ghost is forgotten (right after the takeover pass that ran it).
        var ghostRows = 1
        for _ in 0..<50 where ghostRows != 0 {
            ghostRows = try await harness.query("SELECT count(*) FROM dbos.durable_executors WHERE executor_id = 'ghost'").first?.int(0) ?? -1
            if ghostRows != 0 { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(ghostRows == 0)
        await aware.shutdown()
        await unaware.shutdown()
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
