import LibPQ

/// Recovery: listing an executor's `PENDING` workflows, claiming them for a new run, checking that runs still own
/// theirs, and the dead letter. Each statement sits in the method that runs it.
extension SystemDatabase {
    /// A `PENDING` workflow of an executor and version, as listed for recovery.
    struct PendingWorkflow: Sendable {
        var id: String
        var name: String?
        var ownerToken: String?
    }

    /// A workflow this process has just claimed (by recovery, a queue or a resume).
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

    /// The executor's `PENDING` workflows of this version, oldest first.
    func pendingWorkflows(executorID: String, applicationVersion: String) async throws -> [PendingWorkflow] {
        let result = try await query(
            "list pending workflows",
            """
            SELECT workflow_uuid, name, owner_xid FROM \(identifier: schema).workflow_status
            WHERE status = 'PENDING' AND executor_id = \(executorID) AND application_version = \(applicationVersion)
            ORDER BY created_at
            """)
        return try Self.pendingWorkflows(in: result)
    }

    /// Rows of `workflow_uuid, name, owner_xid`.
    static func pendingWorkflows(in result: QueryResult) throws -> [PendingWorkflow] {
        try result.decode(String.self, String?.self, String?.self).map {
            PendingWorkflow(id: $0, name: $1, ownerToken: $2)
        }
    }

    /// Takes over a batch of pending workflows in one statement: a new owner token and one more recovery attempt
    /// each. The guard on each row's owner token as listed means that of several claimants exactly one wins a
    /// workflow; rows someone else claimed first are simply not returned. `executorID` takes them (this one; another
    /// only when taking over a dead executor's work). Rows already under `newToken` are returned again: the
    /// statement is retried after a lost connection, and the lost attempt may have committed (they would otherwise
    /// stay `PENDING` under this live executor, never run).
    func claimForRecovery(
        _ pending: [PendingWorkflow], newToken: String, from owner: String, executorID: String, payloadLimit: Int
    ) async throws -> [ClaimedWorkflow] {
        let ids = PGTextArray(pending.map(\.id))
        let listedOwners = PGTextArray(pending.map(\.ownerToken))
        let result = try await query(
            "claim workflows for recovery",
            """
            WITH candidates AS (
                SELECT * FROM unnest(\(ids)::text[], \(listedOwners)::text[]) AS c(id, listed_owner)
            ), claimed AS (
                UPDATE \(identifier: schema).workflow_status ws
                SET recovery_attempts = ws.recovery_attempts + CASE WHEN ws.owner_xid = \(newToken) THEN 0 ELSE 1 END,
                    owner_xid = \(newToken), executor_id = \(executorID), updated_at = \(fragment: Statements.nowMilliseconds)
                FROM candidates c
                WHERE ws.workflow_uuid = c.id AND ws.status = 'PENDING'
                  AND ((ws.executor_id = \(owner) AND ws.owner_xid IS NOT DISTINCT FROM c.listed_owner)
                       -- already ours: a retried attempt after a lost connection whose claim had committed
                       OR ws.owner_xid = \(newToken))
                RETURNING ws.workflow_uuid, ws.name, ws.recovery_attempts, ws.inputs, ws.workflow_deadline_epoch_ms,
                          ws.queue_name, ws.queue_partition_key
            )
            SELECT c.workflow_uuid, c.name, c.recovery_attempts,
                   CASE WHEN octet_length(COALESCE(i.inputs, c.inputs)) <= \(payloadLimit) THEN COALESCE(i.inputs, c.inputs) END,
                   octet_length(COALESCE(i.inputs, c.inputs)), c.workflow_deadline_epoch_ms, c.queue_name,
                   c.queue_partition_key
            FROM claimed c LEFT JOIN \(identifier: schema).workflow_input i ON i.workflow_uuid = c.workflow_uuid
            """)
        return try Self.claimedWorkflows(in: result)
    }

    /// Rows of `workflow_uuid, name, recovery_attempts, input (within the limit), input bytes, deadline, queue,
    /// partition key`, as every claim returns them.
    static func claimedWorkflows(in result: QueryResult) throws -> [ClaimedWorkflow] {
        try result.decode(
            String.self, String?.self, Int.self, String?.self, Int?.self, Int64?.self, String?.self, String?.self
        )
        .map { id, name, attempts, input, inputBytes, deadline, queue, partition in
            ClaimedWorkflow(
                id: id, name: name, recoveryAttempts: attempts, input: input, inputBytes: inputBytes ?? 0,
                deadlineMilliseconds: deadline, queueName: queue, partitionKey: partition)
        }
    }

    /// Of these workflows and the owner tokens their runs hold, the IDs still `PENDING` under that token.
    func stillOwned(_ ids: [String], tokens: [String]) async throws -> Set<String> {
        let result = try await query(
            "check that runs still own their workflows",
            """
            SELECT ws.workflow_uuid FROM unnest(\(PGTextArray(ids))::text[], \(PGTextArray(tokens))::text[]) AS c(id, token)
            JOIN \(identifier: schema).workflow_status ws ON ws.workflow_uuid = c.id
            WHERE ws.status = 'PENDING' AND ws.owner_xid = c.token
            """)
        return Set(try result.decode(String.self))
    }

    /// Moves a workflow this run owns to `MAX_RECOVERY_ATTEMPTS_EXCEEDED`.
    func deadLetter(id: String, token: String) async throws {
        let now = Statements.nowMilliseconds
        _ = try await query(
            "move workflow to MAX_RECOVERY_ATTEMPTS_EXCEEDED", workflowID: id,
            """
            UPDATE \(identifier: schema).workflow_status
            SET status = 'MAX_RECOVERY_ATTEMPTS_EXCEEDED', owner_xid = NULL, deduplication_id = NULL,
                started_at_epoch_ms = NULL, queue_name = NULL, updated_at = \(fragment: now), completed_at = \(fragment: now)
            WHERE workflow_uuid = \(id) AND status = 'PENDING' AND owner_xid = \(token)
            """)
    }
}
