import Foundation
import LibPQ
import Logging
import Synchronization
import TestSupport
import Testing

@testable import Durable

/// Many workflows' checkpoints and outcomes sharing one statement and commit (group commit).
@Suite("Group commit")
struct GroupCommitTests {
    /// A migrated database and a `SystemDatabase` on it.
    func database(_ prefix: String) async throws -> (SystemDatabase, MessagingHarness) {
        let harness = try await MessagingHarness.make(prefix: prefix) { _ in }
        var logger = Logger(label: "group-commit-tests")
        logger.logLevel = .critical
        let pool = ConnectionPool(
            configuration: PGConfiguration.forTests(harness.url), maxConnections: 2, logger: logger)
        // 60 s of retries for connection problems: connecting can take seconds on a stalled machine.
        return (
            SystemDatabase(pool: pool, schema: "dbos", retry: DatabaseRetry(timeout: .seconds(60), logger: logger)),
            harness
        )
    }

    func startWorkflows(_ database: SystemDatabase, _ ids: [String], token: String) async throws {
        for id in ids {
            _ = try await database.startWorkflow(
                id: id, name: "w", input: "[]", token: token, executorID: "e", applicationVersion: "v")
        }
    }

    func checkpoint(_ id: String, step: Int, output: String?, token: String) -> StepCheckpoint {
        StepCheckpoint(
            workflowID: id, stepID: step, name: "s\(step)", output: output, error: nil,
            startedAtMilliseconds: 1, completedAtMilliseconds: 2, ownerToken: token)
    }

    @Test(
        "a batch answers each checkpoint as a single write would: written, another owner's, already recorded, or failed alone"
    )
    func batchedSteps() async throws {
        let (database, harness) = try await database("group_steps")
        try await startWorkflows(database, ["a", "b", "c"], token: "mine")
        _ = try await harness.query("UPDATE dbos.workflow_status SET owner_xid = 'theirs' WHERE workflow_uuid = 'b'")
        // c already holds a different checkpoint at step 1 (another run recorded it).
        _ = try await database.recordStep(
            StepCheckpoint(
                workflowID: "c", stepID: 1, name: "s1", output: "\"old\"", error: nil,
                startedAtMilliseconds: 5, completedAtMilliseconds: 6, ownerToken: "mine"))
        let results = await database.recordSteps([
            checkpoint("a", step: 1, output: "1", token: "mine"),
            checkpoint("b", step: 1, output: nil, token: "mine"),
            checkpoint("c", step: 1, output: "3", token: "mine"),
            checkpoint("nobody", step: 1, output: "4", token: "mine"),  // no workflow row
            checkpoint("a", step: 3_000_000_000, output: "6", token: "mine"),  // beyond int4: fails the whole statement
            checkpoint("a", step: 2, output: "5", token: "mine"),
        ])
        #expect(results.count == 6)
        let a1 = try results[0].get()
        #expect(a1.stillOwner && a1.workflowStatus == "PENDING" && a1.existing == nil)
        let b1 = try results[1].get()
        #expect(!b1.stillOwner && b1.workflowStatus == "PENDING")
        let c1 = try results[2].get()
        #expect(c1.existing?.output == "\"old\"")
        let nobody = try results[3].get()
        #expect(nobody.workflowStatus == nil && !nobody.stillOwner)
        // The statement failed as a whole, so each was written alone: only the bad one fails.
        #expect(throws: DurableError.self) { try results[4].get() }
        #expect(try results[5].get().stillOwner)
        let rows = try await harness.query(
            "SELECT workflow_uuid, function_id, output FROM dbos.operation_outputs ORDER BY 1, 2")
        #expect(
            rows.rows.map { "\($0.string(0) ?? "")/\($0.int(1) ?? 0)=\($0.string(2) ?? "null")" } == [
                "a/1=1", "a/2=5", "b/1=null", "c/1=\"old\"", "nobody/1=4",
            ])
        await harness.runtime.shutdown()
    }

    @Test("a batch of outcomes finishes only the workflows each token still owns")
    func batchedOutcomes() async throws {
        let (database, harness) = try await database("group_finish")
        try await startWorkflows(database, ["x", "y", "z"], token: "mine")
        _ = try await harness.query("UPDATE dbos.workflow_status SET status = 'CANCELLED' WHERE workflow_uuid = 'y'")
        let results = await database.finishWorkflows([
            WorkflowOutcomeWrite(id: "x", token: "mine", status: .success, output: "\"done\"", error: nil),
            WorkflowOutcomeWrite(id: "y", token: "mine", status: .success, output: "\"late\"", error: nil),
            WorkflowOutcomeWrite(id: "z", token: "not-mine", status: .error, output: nil, error: "{}"),
        ])
        #expect(try results.map { try $0.get() } == [true, false, false])
        let rows = try await harness.query(
            """
            SELECT s.workflow_uuid, s.status, o.output FROM dbos.workflow_status s
            LEFT JOIN dbos.workflow_output o USING (workflow_uuid) ORDER BY 1
            """)
        #expect(
            rows.rows.map { "\($0.string(0) ?? "") \($0.string(1) ?? "") \($0.string(2) ?? "-")" } == [
                "x SUCCESS \"done\"", "y CANCELLED -", "z PENDING -",
            ])
        await harness.runtime.shutdown()
    }

    @Test("under load writes are batched, every caller gets its own answer, and a lone caller is not made to wait")
    func batcher() async throws {
        let batches = Mutex<[Int]>([])
        let batcher = WriteBatcher<Int, Int>(
            maxInFlight: 2, maxBatch: 10,
            writeOne: { value in
                try await Task.sleep(for: .milliseconds(5))
                batches.withLock { $0.append(1) }
                if value == 13 { throw DurableError(.databaseError, "thirteen") }
                return value * 2
            },
            writeMany: { values in
                try? await Task.sleep(for: .milliseconds(5))
                batches.withLock { $0.append(values.count) }
                return values.map { $0 == 13 ? .failure(DurableError(.databaseError, "thirteen")) : .success($0 * 2) }
            }
        )
        #expect(try await batcher.submit(1) == 2)
        #expect(batches.withLock { $0 } == [1])
        let answers = await withTaskGroup(of: (Int, Int?).self) { group in
            for value in 0..<60 {
                group.addTask { (value, try? await batcher.submit(value)) }
            }
            var answers: [Int: Int?] = [:]
            for await (value, answer) in group { answers[value] = answer }
            return answers
        }
        #expect(answers.count == 60)
        for (value, answer) in answers { #expect(answer == (value == 13 ? nil : value * 2)) }
        let sizes = batches.withLock { $0 }
        #expect(sizes.reduce(0, +) == 61)
        #expect(sizes.contains { $0 > 1 })  // some writes shared a batch
        #expect(sizes.allSatisfy { $0 <= 10 })
    }

    @Test("workflows running at once through a small pool all finish with their own checkpoints")
    func manyWorkflows() async throws {
        let url = try await TestDatabase.fresh("group_workflows").url
        var logger = Logger(label: "group-commit-tests")
        logger.logLevel = .critical
        // A long acquire timeout: eighty workflows and their result polls share four connections, and on a machine
        // running two whole suites at once a start once waited past the default 30 s (this tests batching, not
        // the pool's limit).
        var configuration = DurableConfiguration(databaseURL: url, executorID: "group", maxConnections: 4)
        configuration.connectionAcquireTimeout = .seconds(120)
        let runtime = DurableRuntime(configuration: configuration, logger: logger)
        runtime.register(CountingSteps())
        let outputs = try await withThrowingTaskGroup(of: (Int, Int).self) { group in
            for index in 0..<80 {
                group.addTask {
                    (index, try await runtime.start(CountingSteps.self, index, id: "many-\(index)").result())
                }
            }
            var outputs: [Int: Int] = [:]
            for try await (index, output) in group { outputs[index] = output }
            return outputs
        }
        for index in 0..<80 { #expect(outputs[index] == index * 3 + 3) }
        let rows = try await MessagingHarness(url: url, runtime: runtime).query(
            """
            SELECT count(*) FILTER (WHERE o.output = (w.workflow_uuid_num + o.function_id)::text), count(*)
            FROM dbos.operation_outputs o
            JOIN (SELECT workflow_uuid, substr(workflow_uuid, 6)::int AS workflow_uuid_num FROM dbos.workflow_status) w USING (workflow_uuid)
            """)
        #expect(rows.first?.int(0) == 240)
        #expect(rows.first?.int(1) == 240)
        await runtime.shutdown()
    }
}

/// Three steps whose results depend on the input and the step, so a checkpoint filed under the wrong workflow
/// or step would show.
struct CountingSteps: Workflow {
    static let name = "counting-steps"
    func run(_ ctx: WorkflowContext, _ input: Int) async throws -> Int {
        var total = 0
        for step in 1...3 {
            total += try await ctx.step("count") { input + step } - input
        }
        return input * 3 + total - 3
    }
}
