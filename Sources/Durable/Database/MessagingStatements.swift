/// SQL for messages, events and durable sleep, built once with the quoted schema name (see ``Statements``).
struct MessagingStatements: Sendable {
    let sendFromWorkflow: String
    let sendFromOutside: String
    let receive: String
    let setEvent: String
    let getEvent: String

    init(schema s: String) {
        // $1 message id, $2 destination, $3 topic, $4 message, $5 sender workflow, $6 step, $7 time, $8 owner token
        // The message and the sender's checkpoint commit together: a recovered sender never sends twice.
        // The notifications trigger sends the NOTIFY.
        sendFromWorkflow = """
            WITH owner AS (
                SELECT status, owner_xid IS NOT DISTINCT FROM $8 AS owned FROM \(s).workflow_status WHERE workflow_uuid = $5
            ), sent AS (
                INSERT INTO \(s).notifications (message_uuid, destination_uuid, topic, message, serialization)
                SELECT $1, $2, $3, $4, 'portable_json' FROM owner WHERE owner.owned
                ON CONFLICT (message_uuid) DO NOTHING
            ), recorded AS (
                INSERT INTO \(s).operation_outputs
                    (workflow_uuid, function_id, function_name, output, serialization, started_at_epoch_ms, completed_at_epoch_ms)
                SELECT $5, $6::int4, 'DBOS.send', 'null', 'portable_json', $7::bigint, $7::bigint FROM owner WHERE owner.owned
                ON CONFLICT (workflow_uuid, function_id) DO NOTHING
                RETURNING 1
            )
            SELECT owner.status, owner.owned, (SELECT count(*) FROM recorded) FROM owner
            """

        // $1 message id, $2 destination, $3 topic, $4 message
        sendFromOutside = """
            INSERT INTO \(s).notifications (message_uuid, destination_uuid, topic, message, serialization)
            VALUES ($1, $2, $3, $4, 'portable_json')
            ON CONFLICT (message_uuid) DO NOTHING
            """

        // $1 workflow, $2 topic, $3 step, $4 time, $5 owner token
        // Consumes the oldest unconsumed message of the topic and checkpoints it in the same statement, only
        // while this run owns the workflow.
        receive = """
            WITH owner AS (
                SELECT status, owner_xid IS NOT DISTINCT FROM $5 AS owned FROM \(s).workflow_status WHERE workflow_uuid = $1
            ), taken AS (
                UPDATE \(s).notifications SET consumed = true, consumed_by_function_id = $3::int4
                WHERE message_uuid = (
                    SELECT message_uuid FROM \(s).notifications
                    WHERE destination_uuid = $1 AND topic = $2 AND NOT consumed
                    ORDER BY created_at_epoch_ms, message_uuid
                    LIMIT 1 FOR UPDATE SKIP LOCKED
                ) AND EXISTS (SELECT 1 FROM owner WHERE owner.owned)
                RETURNING message, serialization
            ), recorded AS (
                INSERT INTO \(s).operation_outputs
                    (workflow_uuid, function_id, function_name, output, serialization, started_at_epoch_ms, completed_at_epoch_ms)
                SELECT $1, $3::int4, 'DBOS.recv', taken.message, 'portable_json', $4::bigint, $4::bigint FROM taken
                ON CONFLICT (workflow_uuid, function_id) DO NOTHING
            )
            SELECT owner.status, owner.owned, taken.message, taken.serialization
            FROM owner LEFT JOIN taken ON true
            """

        // $1 workflow, $2 key, $3 value, $4 step, $5 time, $6 owner token
        // Latest value, history row and checkpoint in one statement; the NOTIFY is delivered at commit.
        setEvent = """
            WITH owner AS (
                SELECT status, owner_xid IS NOT DISTINCT FROM $6 AS owned FROM \(s).workflow_status WHERE workflow_uuid = $1
            ), latest AS (
                INSERT INTO \(s).workflow_events (workflow_uuid, key, value, serialization)
                SELECT $1, $2, $3, 'portable_json' FROM owner WHERE owner.owned
                ON CONFLICT (workflow_uuid, key) DO UPDATE SET value = EXCLUDED.value, serialization = EXCLUDED.serialization
            ), history AS (
                INSERT INTO \(s).workflow_events_history (workflow_uuid, function_id, key, value, serialization)
                SELECT $1, $4::int4, $2, $3, 'portable_json' FROM owner WHERE owner.owned
                ON CONFLICT (workflow_uuid, function_id, key) DO UPDATE SET value = EXCLUDED.value
            ), recorded AS (
                INSERT INTO \(s).operation_outputs
                    (workflow_uuid, function_id, function_name, output, serialization, started_at_epoch_ms, completed_at_epoch_ms)
                SELECT $1, $4::int4, 'DBOS.setEvent', 'null', 'portable_json', $5::bigint, $5::bigint FROM owner WHERE owner.owned
                ON CONFLICT (workflow_uuid, function_id) DO NOTHING
            ), notified AS (
                SELECT pg_notify('\(NotificationListener.eventsChannel)', $1 || '::' || $2) FROM owner WHERE owner.owned
            )
            SELECT owner.status, owner.owned, (SELECT count(*) FROM notified) FROM owner
            """

        // $1 workflow, $2 key
        getEvent = """
            SELECT value, serialization FROM \(s).workflow_events WHERE workflow_uuid = $1 AND key = $2
            """
    }
}
