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

/// Writes step checkpoints. Today each call is its own statement and commit; because the engine only ever
/// talks to this type, checkpoints from many workflows can later share one commit (group commit) behind the
/// same call without touching the engine.
struct CheckpointWriter: Sendable {
    let database: SystemDatabase

    func write(_ checkpoint: StepCheckpoint) async throws -> SystemDatabase.StepWriteOutcome {
        try await database.recordStep(checkpoint)
    }
}
