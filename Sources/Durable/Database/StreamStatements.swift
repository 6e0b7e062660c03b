/// SQL for streams (see ``WorkflowContext/writeStream(_:_:)``), built once with the quoted schema name.
struct StreamStatements: Sendable {
    /// DBOS's channel for stream writes; payload `workflow::key`.
    static let channel = "dbos_streams_channel"
    /// The value DBOS writes to close a stream.
    static let closedSentinel = "\"__DBOS_STREAM_CLOSED__\""

    let write: String
    let read: String

    init(schema s: String) {
        // $1 workflow, $2 key, $3 value, $4 step, $5 time, $6 owner token, $7 step name.
        // The value takes the next offset of the stream; it, the checkpoint and the NOTIFY commit together.
        write = """
            WITH owner AS (
                SELECT status, owner_xid IS NOT DISTINCT FROM $6 AS owned FROM \(s).workflow_status
                WHERE workflow_uuid = $1 FOR NO KEY UPDATE
            ), appended AS (
                INSERT INTO \(s).streams (workflow_uuid, key, value, "offset", function_id, serialization)
                SELECT $1, $2, $3,
                       COALESCE((SELECT max("offset") FROM \(s).streams WHERE workflow_uuid = $1 AND key = $2), -1) + 1,
                       $4::int4, 'portable_json'
                FROM owner WHERE owner.owned
                RETURNING "offset"
            ), recorded AS (
                INSERT INTO \(s).operation_outputs
                    (workflow_uuid, function_id, function_name, output, serialization, started_at_epoch_ms, completed_at_epoch_ms)
                SELECT $1, $4::int4, $7, 'null', 'portable_json', $5::bigint, $5::bigint FROM appended
                ON CONFLICT (workflow_uuid, function_id) DO NOTHING
            ), notified AS (
                SELECT pg_notify('\(Self.channel)', $1 || '::' || $2) FROM appended
            )
            SELECT owner.status, owner.owned, (SELECT count(*) FROM notified) FROM owner
            """

        // $1 workflow, $2 key, $3 offset. Status and value come from one snapshot, so a reader never misses a
        // value written just before the workflow finished.
        read = """
            SELECT ws.status, st.value, st.serialization
            FROM \(s).workflow_status ws
            LEFT JOIN \(s).streams st ON st.workflow_uuid = ws.workflow_uuid AND st.key = $2 AND st."offset" = $3
            WHERE ws.workflow_uuid = $1
            """
    }
}
