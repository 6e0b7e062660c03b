import LibPQ
import Logging

/// Every statement the engine runs against the DBOS system tables, and nothing else.
///
/// Values are always bound parameters; only the schema name, an identifier, is quoted into the SQL text once,
/// when the statements are built. Each method is one round trip; the comments say what it decides.
final class SystemDatabase: Sendable {
    let pool: ConnectionPool
    let schema: String
    let retry: DatabaseRetry
    let sql: Statements
    let control: ControlStatements
    let children: ChildStatements
    let queues: QueueStatements
    let transactions: TransactionStatements
    let batches: BatchStatements

    init(pool: ConnectionPool, schema: String, retry: DatabaseRetry) {
        self.pool = pool
        self.schema = schema
        self.retry = retry
        self.sql = Statements(schema: SQLIdentifier.quote(schema))
        self.control = ControlStatements(schema: SQLIdentifier.quote(schema))
        self.children = ChildStatements(schema: SQLIdentifier.quote(schema))
        self.queues = QueueStatements(schema: SQLIdentifier.quote(schema))
        self.transactions = TransactionStatements(schema: SQLIdentifier.quote(schema))
        self.batches = BatchStatements(schema: SQLIdentifier.quote(schema))
    }

    /// Runs one statement on a pooled connection, retrying through connection loss.
    func query(_ what: @autoclosure () -> String, workflowID: String? = nil, _ statement: String, _ parameters: [any PGParameter]) async throws -> QueryResult {
        try await retry.run(what(), workflowID: workflowID) {
            try await pool.withConnection { connection in
                try await connection.query(statement, parameters)
            }
        }
    }

    /// Runs one interpolated statement (its SQL beside the method that calls this) on a pooled connection,
    /// retrying through connection loss.
    func query(_ what: @autoclosure () -> String, workflowID: String? = nil, _ query: PGQuery) async throws -> QueryResult {
        try await self.query(what(), workflowID: workflowID, query.sql, query.parameters)
    }

    // MARK: - Starting and finishing

    /// What starting a workflow found.
    struct StartOutcome: Sendable {
        /// True when this call created the row (its token is the creator), so it must run the body.
        var created: Bool
        var status: String
        var name: String?
    }

    /// Creates the workflow row as `PENDING` owned by `token`, with its input, in one statement. When the ID
    /// is taken, reads the existing row instead: it is ours if it carries our token (a retry after a lost
    /// reply), else it belongs to whoever started it first.
    func startWorkflow(
        id: String, name: String, input: String, token: String, executorID: String, applicationVersion: String,
        timeoutMilliseconds: Int64? = nil, deadlineMilliseconds: Int64? = nil, parentID: String? = nil
    ) async throws -> StartOutcome {
        let inserted = try await query("start workflow", workflowID: id, sql.startWorkflow, [
            id, name, executorID, applicationVersion, token, input, timeoutMilliseconds, deadlineMilliseconds, parentID,
        ])
        if (inserted.first?.int(0) ?? 0) > 0 {
            return StartOutcome(created: true, status: WorkflowState.pending.rawValue, name: name)
        }
        guard let existing = try await existingWorkflow(id: id) else {
            throw DurableError(.databaseError, "the workflow ID is taken but its row could not be read", workflowID: id)
        }
        return StartOutcome(created: existing.creator == token, status: existing.status, name: existing.name)
    }

    /// Records the outcome if this run still owns the workflow: status, `completed_at`, cleared owner token and
    /// deduplication ID, and the output or error in `workflow_output`. Returns false when the row was no longer
    /// ours to finish (cancelled, taken over, or already finished by this same call before a lost reply).
    func finishWorkflow(id: String, token: String, status: WorkflowState, output: String?, error: String?) async throws -> Bool {
        let result = try await query("record the workflow outcome", workflowID: id, sql.finishWorkflow, [id, status.rawValue, token, output, error])
        return (result.first?.int(0) ?? 0) > 0
    }

    // MARK: - Steps

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
    func recordStep(_ checkpoint: StepCheckpoint) async throws -> StepWriteOutcome {
        let result = try await query("record step \(checkpoint.stepID)", workflowID: checkpoint.workflowID, sql.recordStep, [
            checkpoint.workflowID, checkpoint.stepID, checkpoint.name, checkpoint.output, checkpoint.error,
            checkpoint.startedAtMilliseconds, checkpoint.completedAtMilliseconds, checkpoint.ownerToken,
        ])
        guard let row = result.first else {
            return StepWriteOutcome(workflowStatus: nil, stillOwner: false, existing: nil)
        }
        var outcome = StepWriteOutcome(workflowStatus: row.string(0), stillOwner: row.bool(1) ?? false, existing: nil)
        if (row.int(2) ?? 0) == 0 { outcome.existing = try await otherCheckpoint(at: checkpoint) }
        return outcome
    }

    /// After a write that inserted nothing: the checkpoint already at that position, unless it is this very one
    /// (written by an earlier try whose reply was lost, recognised by its name and completion time).
    func otherCheckpoint(at checkpoint: StepCheckpoint) async throws -> RecordedStep? {
        let recorded = try await query("read recorded step \(checkpoint.stepID)", workflowID: checkpoint.workflowID, sql.recordedStep, [checkpoint.workflowID, checkpoint.stepID])
        guard let found = recorded.first, found.int64(3) != checkpoint.completedAtMilliseconds || found.string(0) != checkpoint.name else {
            return nil
        }
        return RecordedStep(
            stepID: checkpoint.stepID, name: found.string(0) ?? "", output: found.string(1), error: found.string(2),
            oversized: false, serialization: found.string(4), childWorkflowID: found.string(5)
        )
    }

    // MARK: - Recovery

    /// A `PENDING` workflow of this executor and version, as listed at launch.
    struct PendingWorkflow: Sendable {
        var id: String
        var name: String?
        var ownerToken: String?
    }

    func pendingWorkflows(executorID: String, applicationVersion: String) async throws -> [PendingWorkflow] {
        let result = try await query("list pending workflows", sql.pendingWorkflows, [executorID, applicationVersion])
        return Self.pendingWorkflows(in: result)
    }

    /// Rows of `workflow_uuid, name, owner_xid`.
    static func pendingWorkflows(in result: QueryResult) -> [PendingWorkflow] {
        result.rows.compactMap { row in
            guard let id = row.string(0) else { return nil }
            return PendingWorkflow(id: id, name: row.string(1), ownerToken: row.string(2))
        }
    }

    /// A workflow this process has just claimed for recovery.
    struct ClaimedWorkflow: Sendable {
        var id: String
        var name: String?
        var recoveryAttempts: Int
        /// The encoded input, or nil if there is none or it exceeded the payload limit.
        var input: String?
        var inputBytes: Int
        /// When the workflow times out, in epoch milliseconds.
        var deadlineMilliseconds: Int64?
        /// The queue it came from, if any.
        var queueName: String? = nil
        /// Its partition of that queue, if the queue is partitioned.
        var partitionKey: String? = nil
    }

    /// Takes over a batch of pending workflows in one statement: a new owner token and one more recovery attempt
    /// each. The guard on each row's owner token as listed means that of several claimants exactly one wins a
    /// workflow; rows someone else claimed first are simply not returned.
    func claimForRecovery(_ pending: [PendingWorkflow], newToken: String, from owner: String, executorID: String, payloadLimit: Int) async throws -> [ClaimedWorkflow] {
        let result = try await query("claim workflows for recovery", sql.claimForRecovery, [
            PGTextArray(pending.map(\.id)), PGTextArray(pending.map(\.ownerToken)), newToken, owner, payloadLimit, executorID,
        ])
        return result.rows.compactMap { row in
            guard let id = row.string(0), let attempts = row.int(2) else { return nil }
            return ClaimedWorkflow(
                id: id, name: row.string(1), recoveryAttempts: attempts, input: row.string(3), inputBytes: row.int(4) ?? 0,
                deadlineMilliseconds: row.int64(5), queueName: row.string(6), partitionKey: row.string(7)
            )
        }
    }

    /// The checkpoint at one position, if any.
    func recordedStep(workflowID: String, stepID: Int) async throws -> RecordedStep? {
        let result = try await query("read recorded step \(stepID)", workflowID: workflowID, sql.recordedStep, [workflowID, stepID])
        guard let row = result.first else { return nil }
        return RecordedStep(stepID: stepID, name: row.string(0) ?? "", output: row.string(1), error: row.string(2),
                            oversized: false, serialization: row.string(4), childWorkflowID: row.string(5))
    }

    /// Of these workflows and the owner tokens their runs hold, the IDs still `PENDING` under that token.
    func stillOwned(_ ids: [String], tokens: [String]) async throws -> Set<String> {
        let result = try await query("check parked workflows", sql.stillOwned, [PGTextArray(ids), PGTextArray(tokens)])
        return Set(result.rows.compactMap { $0.string(0) })
    }

    /// The recorded steps of several workflows at once, keyed by workflow ID and step number. Values above
    /// `limit` bytes are not transferred; they come back marked oversized, so that one huge checkpoint fails its
    /// workflow instead of exhausting memory.
    func loadSteps(workflowIDs: [String], limit: Int) async throws -> [String: [Int: RecordedStep]] {
        let result = try await query("load recorded steps", sql.loadStepsOfMany, [PGTextArray(workflowIDs), limit])
        var steps: [String: [Int: RecordedStep]] = [:]
        for row in result.rows {
            guard let workflowID = row.string(0), let id = row.int(1) else { continue }
            steps[workflowID, default: [:]][id] = RecordedStep(
                stepID: id, name: row.string(2) ?? "", output: row.string(3), error: row.string(4),
                oversized: row.bool(5) ?? false, serialization: row.string(6), childWorkflowID: row.string(7)
            )
        }
        return steps
    }

    /// Moves a workflow this run owns to `MAX_RECOVERY_ATTEMPTS_EXCEEDED`.
    func deadLetter(id: String, token: String) async throws {
        _ = try await query("move workflow to MAX_RECOVERY_ATTEMPTS_EXCEEDED", workflowID: id, sql.deadLetter, [id, token])
    }

    /// Records this process's application version so DBOS's tools and queue workers see it.
    func registerApplicationVersion(_ version: String) async throws {
        _ = try await query("register the application version", sql.registerApplicationVersion, [version])
    }

    // MARK: - Reading

    /// The status row of a workflow with its outcome, or nil if there is no such workflow.
    func workflowRow(id: String, payloadLimit: Int) async throws -> WorkflowRow? {
        let result = try await query("read workflow status", workflowID: id, sql.workflowRow, [id, payloadLimit])
        guard let row = result.first else { return nil }
        return WorkflowRow(
            id: id,
            status: row.string(0) ?? "",
            name: row.string(1),
            executorID: row.string(2),
            applicationVersion: row.string(3),
            recoveryAttempts: row.int(4) ?? 0,
            createdAtMilliseconds: row.int64(5) ?? 0,
            updatedAtMilliseconds: row.int64(6) ?? 0,
            queueName: row.string(7),
            output: row.string(8),
            error: row.string(9),
            serialization: row.string(10),
            outcomeOversized: row.bool(11) ?? false
        )
    }
}

/// A workflow's status row joined with its outcome, as read from the database.
struct WorkflowRow: Sendable {
    var id: String
    var status: String
    var name: String?
    var executorID: String?
    var applicationVersion: String?
    var recoveryAttempts: Int
    var createdAtMilliseconds: Int64
    var updatedAtMilliseconds: Int64
    var queueName: String?
    var output: String?
    var error: String?
    var serialization: String?
    var outcomeOversized: Bool
}
