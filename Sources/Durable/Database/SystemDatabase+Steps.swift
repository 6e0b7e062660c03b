import LibPQ

/// Step checkpoints, in DBOS's `operation_outputs` table (one at a time; many at once are in
/// `SystemDatabase+Batches.swift`). Each statement sits in the method that runs it.
extension SystemDatabase {
    /// What recording a step found.
    struct StepWriteOutcome: Sendable {
        /// The workflow's status, or nil if its row is gone.
        var workflowStatus: String?
        /// True when `token` still owns the workflow.
        var stillOwner: Bool
        /// Set when the position already held a checkpoint that is not this one: another run recorded it.
        var existing: RecordedStep?
    }

    /// Writes one step checkpoint and reports, from the same statement, the workflow's status and whether this
    /// run still owns it. A checkpoint already at this position is never overwritten: if it is not our own
    /// (from before a lost reply, recognised by its completion time) it comes back in `existing`.
    ///
    /// The hot path: one plain insert plus a primary-key read of the workflow's status and owner, both from the
    /// statement's snapshot. A conflict (rare: a lost reply, or another run at the same position) inserts nothing;
    /// the recorded row is then read with ``otherCheckpoint(at:)``.
    func recordStep(_ checkpoint: StepCheckpoint) async throws -> StepWriteOutcome {
        let c = checkpoint
        let result = try await query(
            "record step \(c.stepID)", workflowID: c.workflowID,
            """
            WITH written AS (
                INSERT INTO \(identifier: schema).operation_outputs
                    (workflow_uuid, function_id, function_name, output, error, serialization,
                     started_at_epoch_ms, completed_at_epoch_ms)
                VALUES (\(c.workflowID), \(c.stepID), \(c.name), \(c.output), \(c.error), 'portable_json',
                        \(c.startedAtMilliseconds), \(c.completedAtMilliseconds))
                ON CONFLICT (workflow_uuid, function_id) DO NOTHING
                RETURNING 1
            )
            SELECT ws.status, ws.owner_xid IS NOT DISTINCT FROM \(c.ownerToken), (SELECT count(*) FROM written)
            FROM \(identifier: schema).workflow_status ws WHERE ws.workflow_uuid = \(c.workflowID)
            """)
        guard let (status, owned, written) = try result.decodeFirst(String?.self, Bool?.self, Int.self) else {
            return StepWriteOutcome(workflowStatus: nil, stillOwner: false, existing: nil)
        }
        var outcome = StepWriteOutcome(workflowStatus: status, stillOwner: owned ?? false, existing: nil)
        if written == 0 { outcome.existing = try await otherCheckpoint(at: checkpoint) }
        return outcome
    }

    /// After a write that inserted nothing: the checkpoint already at that position, unless it is this very one
    /// (written by an earlier try whose reply was lost, recognised by its name and completion time).
    func otherCheckpoint(at checkpoint: StepCheckpoint) async throws -> RecordedStep? {
        guard
            let (found, completedAt) = try await recordedStepAndCompletion(
                workflowID: checkpoint.workflowID, stepID: checkpoint.stepID),
            completedAt != checkpoint.completedAtMilliseconds || found.name != checkpoint.name
        else {
            return nil
        }
        return found
    }

    /// The checkpoint at one position, if any.
    func recordedStep(workflowID: String, stepID: Int) async throws -> RecordedStep? {
        try await recordedStepAndCompletion(workflowID: workflowID, stepID: stepID)?.step
    }

    private func recordedStepAndCompletion(workflowID: String, stepID: Int) async throws -> (
        step: RecordedStep, completedAt: Int64?
    )? {
        let result = try await query(
            "read recorded step \(stepID)", workflowID: workflowID,
            """
            SELECT function_name, output, error, completed_at_epoch_ms, serialization, child_workflow_id
            FROM \(identifier: schema).operation_outputs WHERE workflow_uuid = \(workflowID) AND function_id = \(stepID)
            """)
        guard
            let (name, output, error, completedAt, serialization, child) =
                try result.decodeFirst(
                    String?.self, String?.self, String?.self, Int64?.self, String?.self, String?.self)
        else { return nil }
        let step = RecordedStep(
            stepID: stepID, name: name ?? "", output: output, error: error, oversized: false,
            serialization: serialization, childWorkflowID: child)
        return (step, completedAt)
    }

    /// The recorded steps of several workflows at once, keyed by workflow ID and step number. Values above
    /// `limit` bytes are not transferred; they come back marked oversized, so that one huge checkpoint fails its
    /// workflow instead of exhausting memory.
    func loadSteps(workflowIDs: [String], limit: Int) async throws -> [String: [Int: RecordedStep]] {
        let result = try await query(
            "load recorded steps",
            """
            SELECT workflow_uuid, function_id, function_name,
                   CASE WHEN octet_length(output) <= \(limit) THEN output END,
                   CASE WHEN octet_length(error) <= \(limit) THEN error END,
                   COALESCE(octet_length(output) > \(limit), false) OR COALESCE(octet_length(error) > \(limit), false),
                   serialization, child_workflow_id
            FROM \(identifier: schema).operation_outputs WHERE workflow_uuid = ANY(\(PGTextArray(workflowIDs))::text[])
            ORDER BY workflow_uuid, function_id
            """)
        var steps: [String: [Int: RecordedStep]] = [:]
        let rows = try result.decode(
            String.self, Int.self, String?.self, String?.self, String?.self, Bool?.self, String?.self, String?.self)
        for (workflowID, id, name, output, error, oversized, serialization, child) in rows {
            steps[workflowID, default: [:]][id] = RecordedStep(
                stepID: id, name: name ?? "", output: output, error: error, oversized: oversized ?? false,
                serialization: serialization, childWorkflowID: child
            )
        }
        return steps
    }
}
