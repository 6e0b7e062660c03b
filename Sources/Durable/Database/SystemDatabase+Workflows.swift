import LibPQ

/// Workflows: starting (and starting children), reading, finishing, cancelling and resuming them, in DBOS's
/// `workflow_status`, `workflow_input` and `workflow_output` tables. Each statement sits in the method that runs it.
extension SystemDatabase {
    /// The channel on which cancellations are announced, so the process running the workflow stops it at once.
    static let cancellationChannel = "durable_workflow_cancelled"

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
        // DO NOTHING keeps the common case a plain insert; a conflict returns no row, and the existing row is read.
        let inserted = try await query(
            "start workflow", workflowID: id,
            """
            WITH started AS (
                INSERT INTO \(identifier: schema).workflow_status
                    (workflow_uuid, status, name, executor_id, application_version, recovery_attempts,
                     serialization, creator_xid, owner_xid, priority, workflow_timeout_ms, workflow_deadline_epoch_ms,
                     parent_workflow_id)
                VALUES (\(id), 'PENDING', \(name), \(executorID), \(applicationVersion), 1, 'portable_json', \(token), \(token), 0,
                        \(timeoutMilliseconds)::bigint, \(deadlineMilliseconds)::bigint, \(parentID))
                ON CONFLICT (workflow_uuid) DO NOTHING
                RETURNING workflow_uuid
            ), stored_input AS (
                INSERT INTO \(identifier: schema).workflow_input (workflow_uuid, inputs)
                SELECT workflow_uuid, \(input)::text FROM started
                ON CONFLICT (workflow_uuid) DO NOTHING
            )
            SELECT count(*) FROM started
            """)
        if try (inserted.decodeFirst(Int.self) ?? 0) > 0 {
            return StartOutcome(created: true, status: WorkflowState.pending.rawValue, name: name)
        }
        guard let existing = try await existingWorkflow(id: id) else {
            throw DurableError(.databaseError, "the workflow ID is taken but its row could not be read", workflowID: id)
        }
        return StartOutcome(created: existing.creator == token, status: existing.status, name: existing.name)
    }

    /// The status, name and creator token of a workflow, or nil when it does not exist.
    func existingWorkflow(id: String) async throws -> (status: String, name: String?, creator: String?)? {
        let result = try await query(
            "read existing workflow", workflowID: id,
            """
            SELECT status, name, creator_xid FROM \(identifier: schema).workflow_status WHERE workflow_uuid = \(id)
            """)
        return try result.decodeFirst(String.self, String?.self, String?.self).map {
            (status: $0, name: $1, creator: $2)
        }
    }

    /// What starting a child found.
    struct ChildStartOutcome: Sendable {
        var workflowStatus: String?
        var stillOwner: Bool
        /// True when this call created the child's row, so this process must run it.
        var created: Bool
        /// The name on the child's row (ours, or an older row's under the same ID).
        var childName: String?
    }

    /// Starts a child workflow: the child's row, its input and the parent's checkpoint of the start commit
    /// together, only while the parent run owns the parent, so a recovered parent finds the checkpoint and never
    /// starts the child twice.
    func startChild(
        id: String, name: String, input: String, token: String, executorID: String, applicationVersion: String,
        deadline: Int64?, parentID: String, parentStep: Int, parentToken: String
    ) async throws -> ChildStartOutcome {
        let now = WorkflowContext.nowMilliseconds()
        let result = try await query(
            "start child workflow", workflowID: parentID,
            """
            WITH owner AS (
                SELECT status, owner_xid IS NOT DISTINCT FROM \(parentToken) AS owned FROM \(identifier: schema).workflow_status
                WHERE workflow_uuid = \(parentID)
            ), started AS (
                INSERT INTO \(identifier: schema).workflow_status
                    (workflow_uuid, status, name, executor_id, application_version, recovery_attempts,
                     serialization, creator_xid, owner_xid, priority, workflow_deadline_epoch_ms, parent_workflow_id)
                SELECT \(id), 'PENDING', \(name), \(executorID), \(applicationVersion), 1, 'portable_json', \(token), \(token), 0,
                       \(deadline)::bigint, \(parentID)
                FROM owner WHERE owner.owned
                ON CONFLICT (workflow_uuid) DO NOTHING
                RETURNING workflow_uuid
            ), stored_input AS (
                INSERT INTO \(identifier: schema).workflow_input (workflow_uuid, inputs)
                SELECT workflow_uuid, \(input)::text FROM started
                ON CONFLICT (workflow_uuid) DO NOTHING
            ), recorded AS (
                INSERT INTO \(identifier: schema).operation_outputs
                    (workflow_uuid, function_id, function_name, output, serialization, child_workflow_id,
                     started_at_epoch_ms, completed_at_epoch_ms)
                SELECT \(parentID), \(parentStep)::int4, \(name), 'null', 'portable_json', \(id), \(now)::bigint, \(now)::bigint
                FROM owner WHERE owner.owned
                ON CONFLICT (workflow_uuid, function_id) DO NOTHING
            )
            SELECT owner.status, owner.owned, (SELECT count(*) FROM started),
                   (SELECT name FROM \(identifier: schema).workflow_status WHERE workflow_uuid = \(id))
            FROM owner
            """)
        let row = try result.decodeFirst(String?.self, Bool?.self, Int.self, String?.self)
        return ChildStartOutcome(
            workflowStatus: row?.0 ?? nil, stillOwner: (row?.1 ?? nil) ?? false, created: (row?.2 ?? 0) > 0,
            childName: row?.3 ?? nil
        )
    }

    /// Records the outcome if this run still owns the workflow: status, `completed_at`, cleared owner token and
    /// deduplication ID, and the output or error in `workflow_output`. Returns false when the row was no longer
    /// ours to finish (cancelled, taken over, or already finished by this same call before a lost reply).
    func finishWorkflow(id: String, token: String, status: WorkflowState, output: String?, error: String?) async throws
        -> Bool
    {
        let now = Statements.nowMilliseconds
        let result = try await query(
            "record the workflow outcome", workflowID: id,
            """
            WITH finished AS (
                UPDATE \(identifier: schema).workflow_status
                SET status = \(status.rawValue), updated_at = \(fragment: now), completed_at = \(fragment: now), owner_xid = NULL,
                    deduplication_id = NULL
                WHERE workflow_uuid = \(id) AND status = 'PENDING' AND owner_xid = \(token)
                RETURNING 1
            ), stored_output AS (
                INSERT INTO \(identifier: schema).workflow_output (workflow_uuid, output, error)
                SELECT \(id)::text, \(output)::text, \(error)::text WHERE EXISTS (SELECT 1 FROM finished)
                ON CONFLICT (workflow_uuid) DO UPDATE SET output = EXCLUDED.output, error = EXCLUDED.error
            )
            SELECT count(*) FROM finished
            """)
        return try (result.decodeFirst(Int.self) ?? 0) > 0
    }

    /// Marks a workflow `CANCELLED` unless it already finished, and announces it (the NOTIFY reaches the running
    /// process at commit). Given `onlyIfOwnedBy`, only while that run still owns it (a deadline passed: a workflow
    /// cancelled and resumed meanwhile has a new owner and no deadline, and is not that timer's to cancel).
    ///
    /// - Returns: whether this call cancelled it, and its status now (nil when no such workflow exists).
    func cancel(id: String, onlyIfOwnedBy token: String? = nil) async throws -> (cancelled: Bool, status: String?) {
        let now = Statements.nowMilliseconds
        let result = try await query(
            token == nil ? "cancel workflow" : "cancel timed-out workflow", workflowID: id,
            """
            WITH cancelled AS (
                UPDATE \(identifier: schema).workflow_status
                SET status = 'CANCELLED', owner_xid = NULL, queue_name = NULL, deduplication_id = NULL,
                    started_at_epoch_ms = NULL, completed_at = \(fragment: now), updated_at = \(fragment: now)
                WHERE workflow_uuid = \(id) AND status NOT IN ('SUCCESS', 'ERROR')
                  AND (\(token)::text IS NULL OR owner_xid = \(token))
                RETURNING workflow_uuid
            ), notified AS (
                SELECT pg_notify(\(Self.cancellationChannel), workflow_uuid) FROM cancelled
            )
            SELECT (SELECT count(*) FROM notified), (SELECT status FROM \(identifier: schema).workflow_status WHERE workflow_uuid = \(id))
            """)
        let row = try result.decodeFirst(Int.self, String?.self)
        return ((row?.0 ?? 0) > 0, row?.1 ?? nil)
    }

    /// Takes a workflow over for a fresh run from its last checkpoint, as DBOS's resume does: the attempt count
    /// and deadline start afresh and this process runs it. Returns nil when it has finished (`SUCCESS` or
    /// `ERROR`) or does not exist.
    func resume(id: String, token: String, executorID: String, applicationVersion: String, payloadLimit: Int)
        async throws -> ClaimedWorkflow?
    {
        let result = try await query(
            "resume workflow", workflowID: id,
            """
            WITH resumed AS (
                UPDATE \(identifier: schema).workflow_status
                SET status = 'PENDING', owner_xid = \(token), executor_id = \(executorID), application_version = \(applicationVersion),
                    recovery_attempts = 1, workflow_deadline_epoch_ms = NULL, deduplication_id = NULL,
                    started_at_epoch_ms = NULL, completed_at = NULL, queue_name = NULL,
                    updated_at = \(fragment: Statements.nowMilliseconds)
                WHERE workflow_uuid = \(id) AND status NOT IN ('SUCCESS', 'ERROR')
                RETURNING name, inputs
            )
            SELECT r.name,
                   CASE WHEN octet_length(COALESCE(i.inputs, r.inputs)) <= \(payloadLimit) THEN COALESCE(i.inputs, r.inputs) END,
                   octet_length(COALESCE(i.inputs, r.inputs))
            FROM resumed r LEFT JOIN \(identifier: schema).workflow_input i ON i.workflow_uuid = \(id)
            """)
        guard let (name, input, inputBytes) = try result.decodeFirst(String?.self, String?.self, Int?.self) else {
            return nil
        }
        return ClaimedWorkflow(
            id: id, name: name, recoveryAttempts: 1, input: input, inputBytes: inputBytes ?? 0,
            deadlineMilliseconds: nil)
    }

    /// Records this process's application version so DBOS's tools and queue workers see it.
    func registerApplicationVersion(_ version: String) async throws {
        _ = try await query(
            "register the application version",
            """
            INSERT INTO \(identifier: schema).application_versions (version_id, version_name)
            VALUES (gen_random_uuid()::text, \(version)) ON CONFLICT DO NOTHING
            """)
    }

    /// The status row of a workflow with its outcome (values above `payloadLimit` bytes left out and marked), or
    /// nil if there is no such workflow.
    func workflowRow(id: String, payloadLimit: Int) async throws -> WorkflowStatusRow? {
        let result = try await query(
            "read workflow status", workflowID: id,
            """
            SELECT ws.status, ws.name, ws.executor_id, ws.application_version, ws.recovery_attempts,
                   ws.created_at, ws.updated_at, ws.queue_name,
                   CASE WHEN octet_length(COALESCE(wo.output, ws.output)) <= \(payloadLimit) THEN COALESCE(wo.output, ws.output) END,
                   CASE WHEN octet_length(COALESCE(wo.error, ws.error)) <= \(payloadLimit) THEN COALESCE(wo.error, ws.error) END,
                   ws.serialization,
                   COALESCE(octet_length(COALESCE(wo.output, ws.output)) > \(payloadLimit), false)
                     OR COALESCE(octet_length(COALESCE(wo.error, ws.error)) > \(payloadLimit), false)
            FROM \(identifier: schema).workflow_status ws
            LEFT JOIN \(identifier: schema).workflow_output wo ON wo.workflow_uuid = ws.workflow_uuid
            WHERE ws.workflow_uuid = \(id)
            """)
        guard let row = result.first else { return nil }
        return WorkflowStatusRow(
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
struct WorkflowStatusRow: Sendable {
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
