import Durable
import LibPQ

/// A workflow of `steps` steps that do nothing: it measures the engine's own cost, checkpoints included.
struct NoOpWorkflow: Workflow {
    static let name = "bench-noop"

    func run(_ ctx: WorkflowContext, _ steps: Int) async throws -> Int {
        var total = 0
        for index in 0..<steps {
            total += try await ctx.step("noop") { index }
        }
        return total
    }
}

/// One measured workload: runs one operation and returns how long it took.
struct Workload {
    var name: String
    var perRound: Int
    var operation: () async throws -> Duration
}

/// The floor: one single-row INSERT committed on its own (autocommit), on a dedicated connection.
func rawInsertCommit(_ connection: PGConnection, table: String) -> () async throws -> Duration {
    let statement = "INSERT INTO \(table) (v) VALUES ($1)"
    return {
        let clock = ContinuousClock()
        let start = clock.now
        try await connection.query(statement, ["x"])
        return start.duration(to: clock.now)
    }
}

/// Starts a workflow of `steps` no-op steps and waits for its result.
func sequentialWorkflow(_ runtime: DurableRuntime, steps: Int) -> () async throws -> Duration {
    {
        let clock = ContinuousClock()
        let start = clock.now
        let handle = try await runtime.start(NoOpWorkflow.self, steps)
        _ = try await handle.result()
        return start.duration(to: clock.now)
    }
}
