/// A step checkpoint as loaded from `operation_outputs` for a replay.
struct RecordedStep: Sendable {
    var stepID: Int
    var name: String
    var output: String?
    var error: String?
    /// The value exceeded the payload limit and was left in the database.
    var oversized: Bool
    var serialization: String?
    /// The child workflow started at this position, if it was a child start.
    var childWorkflowID: String? = nil
}

/// A step checkpoint about to be written.
struct StepCheckpoint: Sendable {
    var workflowID: String
    var stepID: Int
    var name: String
    var output: String?
    var error: String?
    var startedAtMilliseconds: Int64
    var completedAtMilliseconds: Int64
    /// The run's ownership token (`owner_xid`); the write is refused if the workflow has another owner.
    var ownerToken: String
}

/// Writes step checkpoints and workflow outcomes, the two writes every workflow makes most often.
///
/// A write runs on its own while few are under way; when many workflows write at once, those waiting share one
/// statement and commit (see ``WriteBatcher``). Each caller still gets exactly its own answer.
final class CheckpointWriter: Sendable {
    private let database: SystemDatabase
    private let steps: WriteBatcher<StepCheckpoint, SystemDatabase.StepWriteOutcome>
    private let outcomes: WriteBatcher<WorkflowOutcomeWrite, Bool>

    /// - Parameter parallelWrites: how many writes of each kind run on their own before later ones are batched.
    init(database: SystemDatabase, parallelWrites: Int) {
        self.database = database
        steps = WriteBatcher(
            maxInFlight: parallelWrites, maxBatch: 100,
            writeOne: { try await database.recordStep($0) },
            writeMany: { await database.recordSteps($0) }
        )
        outcomes = WriteBatcher(
            maxInFlight: parallelWrites, maxBatch: 100,
            writeOne: {
                try await database.finishWorkflow(
                    id: $0.id, token: $0.token, status: $0.status, output: $0.output, error: $0.error)
            },
            writeMany: { await database.finishWorkflows($0) }
        )
    }

    /// Values above this many bytes are written alone: a batch sends them inside an array literal, which costs
    /// an escaping pass over every character, and there is little to gain by sharing a commit for them.
    static let largestBatchedValue = 16 * 1024

    func write(_ checkpoint: StepCheckpoint) async throws -> SystemDatabase.StepWriteOutcome {
        guard Self.isSmall(checkpoint.output, checkpoint.error) else {
            return try await database.recordStep(checkpoint)
        }
        return try await steps.submit(checkpoint)
    }

    /// Records a workflow's outcome; false when the workflow was no longer this run's to finish.
    func finish(_ outcome: WorkflowOutcomeWrite) async throws -> Bool {
        guard Self.isSmall(outcome.output, outcome.error) else {
            return try await database.finishWorkflow(
                id: outcome.id, token: outcome.token, status: outcome.status, output: outcome.output,
                error: outcome.error)
        }
        return try await outcomes.submit(outcome)
    }

    private static func isSmall(_ first: String?, _ second: String?) -> Bool {
        (first?.utf8.count ?? 0) + (second?.utf8.count ?? 0) <= largestBatchedValue
    }
}
