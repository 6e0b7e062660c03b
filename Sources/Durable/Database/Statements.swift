/// The SQL text of every system-database statement, built once with the quoted schema name.
///
/// The schema is the only thing ever put into SQL text, and only after ``LibPQ/SQLIdentifier/quote(_:)``;
/// every value is a `$n` parameter.
struct Statements: Sendable {
    /// The database clock in epoch milliseconds, as DBOS stores times.
    static let nowMilliseconds: StaticString = "(EXTRACT(epoch FROM now()) * 1000.0)::bigint"

    let startWorkflow: String
    let existingWorkflow: String
    let finishWorkflow: String
    let recordStep: String
    let recordedStep: String
    let loadStepsOfMany: String
    let pendingWorkflows: String
    let claimForRecovery: String
    let deadLetter: String
    let registerApplicationVersion: String
    let workflowRow: String
    let stillOwned: String

    init(schema s: String) {
        let now = Self.nowMilliseconds

        // $1 id, $2 name, $3 executor, $4 version, $5 token (creator and owner), $6 input, $7 timeout ms,
        // $8 deadline (epoch ms), $9 parent workflow
        // DO NOTHING keeps the common case a plain insert; a conflict returns no row and the caller then reads
        // the existing row with `existingWorkflow`.
        startWorkflow = """
            WITH started AS (
                INSERT INTO \(s).workflow_status
                    (workflow_uuid, status, name, executor_id, application_version, recovery_attempts,
                     serialization, creator_xid, owner_xid, priority, workflow_timeout_ms, workflow_deadline_epoch_ms,
                     parent_workflow_id)
                VALUES ($1, 'PENDING', $2, $3, $4, 1, 'portable_json', $5, $5, 0, $7::bigint, $8::bigint, $9)
                ON CONFLICT (workflow_uuid) DO NOTHING
                RETURNING workflow_uuid
            ), stored_input AS (
                INSERT INTO \(s).workflow_input (workflow_uuid, inputs)
                SELECT workflow_uuid, $6::text FROM started
                ON CONFLICT (workflow_uuid) DO NOTHING
            )
            SELECT count(*) FROM started
            """

        // $1 id
        existingWorkflow = """
            SELECT status, name, creator_xid FROM \(s).workflow_status WHERE workflow_uuid = $1
            """

        // $1 id, $2 final status, $3 owner token, $4 output, $5 error
        finishWorkflow = """
            WITH finished AS (
                UPDATE \(s).workflow_status
                SET status = $2, updated_at = \(now), completed_at = \(now), owner_xid = NULL, deduplication_id = NULL
                WHERE workflow_uuid = $1 AND status = 'PENDING' AND owner_xid = $3
                RETURNING 1
            ), stored_output AS (
                INSERT INTO \(s).workflow_output (workflow_uuid, output, error)
                SELECT $1::text, $4::text, $5::text WHERE EXISTS (SELECT 1 FROM finished)
                ON CONFLICT (workflow_uuid) DO UPDATE SET output = EXCLUDED.output, error = EXCLUDED.error
            )
            SELECT count(*) FROM finished
            """

        // $1 id, $2 step, $3 name, $4 output, $5 error, $6 started, $7 completed, $8 owner token
        // The common case is one plain insert plus a primary-key read of the workflow's status and owner, both
        // from the statement's snapshot. A conflict (rare: a lost reply, or another run at the same position)
        // inserts nothing; the caller then reads the recorded row with `recordedStep`.
        recordStep = """
            WITH written AS (
                INSERT INTO \(s).operation_outputs
                    (workflow_uuid, function_id, function_name, output, error, serialization,
                     started_at_epoch_ms, completed_at_epoch_ms)
                VALUES ($1, $2, $3, $4, $5, 'portable_json', $6, $7)
                ON CONFLICT (workflow_uuid, function_id) DO NOTHING
                RETURNING 1
            )
            SELECT ws.status, ws.owner_xid IS NOT DISTINCT FROM $8, (SELECT count(*) FROM written)
            FROM \(s).workflow_status ws WHERE ws.workflow_uuid = $1
            """

        // $1 id, $2 step
        recordedStep = """
            SELECT function_name, output, error, completed_at_epoch_ms, serialization, child_workflow_id
            FROM \(s).operation_outputs WHERE workflow_uuid = $1 AND function_id = $2
            """

        // $1 executor, $2 version
        pendingWorkflows = """
            SELECT workflow_uuid, name, owner_xid FROM \(s).workflow_status
            WHERE status = 'PENDING' AND executor_id = $1 AND application_version = $2
            ORDER BY created_at
            """

        // $1 ids, $2 their owner tokens as listed, $3 new token, $4 executor they belong to, $5 payload limit,
        // $6 executor taking them (this one; another only when taking over a dead executor's work). Rows already
        // under $3 are returned again: the statement is retried after a lost connection, and the lost attempt may
        // have committed (they would otherwise stay PENDING under this live executor, never run).
        claimForRecovery = """
            WITH candidates AS (
                SELECT * FROM unnest($1::text[], $2::text[]) AS c(id, listed_owner)
            ), claimed AS (
                UPDATE \(s).workflow_status ws
                SET recovery_attempts = ws.recovery_attempts + CASE WHEN ws.owner_xid = $3 THEN 0 ELSE 1 END,
                    owner_xid = $3, executor_id = $6, updated_at = \(now)
                FROM candidates c
                WHERE ws.workflow_uuid = c.id AND ws.status = 'PENDING'
                  AND ((ws.executor_id = $4 AND ws.owner_xid IS NOT DISTINCT FROM c.listed_owner)
                       -- already ours: a retried attempt after a lost connection whose claim had committed
                       OR ws.owner_xid = $3)
                RETURNING ws.workflow_uuid, ws.name, ws.recovery_attempts, ws.inputs, ws.workflow_deadline_epoch_ms,
                          ws.queue_name, ws.queue_partition_key
            )
            SELECT c.workflow_uuid, c.name, c.recovery_attempts,
                   CASE WHEN octet_length(COALESCE(i.inputs, c.inputs)) <= $5 THEN COALESCE(i.inputs, c.inputs) END,
                   octet_length(COALESCE(i.inputs, c.inputs)), c.workflow_deadline_epoch_ms, c.queue_name,
                   c.queue_partition_key
            FROM claimed c LEFT JOIN \(s).workflow_input i ON i.workflow_uuid = c.workflow_uuid
            """

        // $1 ids, $2 payload limit in bytes
        loadStepsOfMany = """
            SELECT workflow_uuid, function_id, function_name,
                   CASE WHEN octet_length(output) <= $2 THEN output END,
                   CASE WHEN octet_length(error) <= $2 THEN error END,
                   COALESCE(octet_length(output) > $2, false) OR COALESCE(octet_length(error) > $2, false),
                   serialization, child_workflow_id
            FROM \(s).operation_outputs WHERE workflow_uuid = ANY($1::text[]) ORDER BY workflow_uuid, function_id
            """

        // $1 id, $2 owner token
        deadLetter = """
            UPDATE \(s).workflow_status
            SET status = 'MAX_RECOVERY_ATTEMPTS_EXCEEDED', owner_xid = NULL, deduplication_id = NULL,
                started_at_epoch_ms = NULL, queue_name = NULL, updated_at = \(now), completed_at = \(now)
            WHERE workflow_uuid = $1 AND status = 'PENDING' AND owner_xid = $2
            """

        // $1 version
        registerApplicationVersion = """
            INSERT INTO \(s).application_versions (version_id, version_name)
            VALUES (gen_random_uuid()::text, $1) ON CONFLICT DO NOTHING
            """

        // $1 ids, $2 the owner tokens their runs hold: those still PENDING under that token (parked runs waking).
        stillOwned = """
            SELECT ws.workflow_uuid FROM unnest($1::text[], $2::text[]) AS c(id, token)
            JOIN \(s).workflow_status ws ON ws.workflow_uuid = c.id
            WHERE ws.status = 'PENDING' AND ws.owner_xid = c.token
            """

        // $1 id, $2 payload limit
        workflowRow = """
            SELECT ws.status, ws.name, ws.executor_id, ws.application_version, ws.recovery_attempts,
                   ws.created_at, ws.updated_at, ws.queue_name,
                   CASE WHEN octet_length(COALESCE(wo.output, ws.output)) <= $2 THEN COALESCE(wo.output, ws.output) END,
                   CASE WHEN octet_length(COALESCE(wo.error, ws.error)) <= $2 THEN COALESCE(wo.error, ws.error) END,
                   ws.serialization,
                   COALESCE(octet_length(COALESCE(wo.output, ws.output)) > $2, false)
                     OR COALESCE(octet_length(COALESCE(wo.error, ws.error)) > $2, false)
            FROM \(s).workflow_status ws
            LEFT JOIN \(s).workflow_output wo ON wo.workflow_uuid = ws.workflow_uuid
            WHERE ws.workflow_uuid = $1
            """
    }
}
