/// SQL for starting child workflows, built once with the quoted schema name (see ``Statements``).
struct ChildStatements: Sendable {
    let startChild: String

    init(schema s: String) {
        // $1 child id, $2 child name, $3 executor, $4 version, $5 child token, $6 input, $7 deadline,
        // $8 parent id, $9 parent step, $10 time, $11 parent owner token.
        // The child's row, its input and the parent's checkpoint of the start commit together, only while the
        // parent run owns the parent: a recovered parent finds the checkpoint and never starts the child twice.
        startChild = """
            WITH owner AS (
                SELECT status, owner_xid IS NOT DISTINCT FROM $11 AS owned FROM \(s).workflow_status WHERE workflow_uuid = $8
            ), started AS (
                INSERT INTO \(s).workflow_status
                    (workflow_uuid, status, name, executor_id, application_version, recovery_attempts,
                     serialization, creator_xid, owner_xid, priority, workflow_deadline_epoch_ms, parent_workflow_id)
                SELECT $1, 'PENDING', $2, $3, $4, 1, 'portable_json', $5, $5, 0, $7::bigint, $8 FROM owner WHERE owner.owned
                ON CONFLICT (workflow_uuid) DO NOTHING
                RETURNING workflow_uuid
            ), stored_input AS (
                INSERT INTO \(s).workflow_input (workflow_uuid, inputs)
                SELECT workflow_uuid, $6::text FROM started
                ON CONFLICT (workflow_uuid) DO NOTHING
            ), recorded AS (
                INSERT INTO \(s).operation_outputs
                    (workflow_uuid, function_id, function_name, output, serialization, child_workflow_id,
                     started_at_epoch_ms, completed_at_epoch_ms)
                SELECT $8, $9::int4, $2, 'null', 'portable_json', $1, $10::bigint, $10::bigint FROM owner WHERE owner.owned
                ON CONFLICT (workflow_uuid, function_id) DO NOTHING
            )
            SELECT owner.status, owner.owned, (SELECT count(*) FROM started),
                   (SELECT name FROM \(s).workflow_status WHERE workflow_uuid = $1)
            FROM owner
            """
    }
}
