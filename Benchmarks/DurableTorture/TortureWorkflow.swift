import Durable
import Foundation
import LibPQ

struct TortureInput: Codable, Sendable {
    var steps: Int
    /// How long each plain step's body takes after its effect: the window in which a kill makes it repeat.
    var stepMilliseconds: Int
}

/// Alternates exactly-once transactional steps (one row each in `tx_effects`, written with the checkpoint) and
/// plain steps (one row per attempt in `plain_effects`, written before the checkpoint).
struct TortureWorkflow: Workflow {
    static let name = "torture"
    let effects: ConnectionPool
    let appSchema: String

    func run(_ ctx: WorkflowContext, _ input: TortureInput) async throws -> Int {
        var done = 0
        for step in 1...input.steps {
            if step % 2 == 1 {
                done += try await ctx.transaction("tx-\(step)") { connection in
                    try await connection.query(
                        "INSERT INTO \(appSchema).tx_effects (workflow_id, step) VALUES ($1, $2)",
                        [ctx.workflowID, step])
                    return 1
                }
            } else {
                done += try await ctx.step(
                    "plain-\(step)",
                    retry: RetryPolicy(maxAttempts: 20, initialInterval: .milliseconds(50), maxInterval: .seconds(1))
                ) {
                    try await effects.withConnection { connection in
                        try await connection.query(
                            "INSERT INTO \(appSchema).plain_effects (workflow_id, step) VALUES ($1, $2)",
                            [ctx.workflowID, step])
                    }
                    try await Task.sleep(for: .milliseconds(input.stepMilliseconds))
                    return 1
                }
            }
        }
        return done
    }
}
