import LibPQ

/// Messages, events and streams, in DBOS's `notifications`, `workflow_events`, `workflow_events_history` and
/// `streams` tables. Each statement sits in the method that runs it. A write made from a workflow commits with
/// that workflow's checkpoint in the same statement, and only while the calling run still owns the workflow.
extension SystemDatabase {
    /// DBOS's channel for stream writes; payload `workflow::key`.
    static let streamsChannel = "dbos_streams_channel"
    /// The value DBOS writes to close a stream.
    static let streamClosedSentinel = "\"__DBOS_STREAM_CLOSED__\""

    /// Whether a messaging write found the workflow still owned by the calling run.
    struct OwnedWrite: Sendable {
        var workflowStatus: String?
        var stillOwner: Bool
    }

    // MARK: - Messages

    /// Sends a message from a workflow: the message and the sender's checkpoint commit together, so a recovered
    /// sender never sends twice. The notifications trigger sends the NOTIFY.
    func sendFromWorkflow(
        messageID: String, destination: String, topic: String, message: String, sender: String, stepID: Int,
        ownerToken: String
    ) async throws -> OwnedWrite {
        let now = WorkflowContext.nowMilliseconds()
        return try OwnedWrite(
            await messagingQuery(
                "send a message", workflowID: sender,
                """
                WITH owner AS (
                    SELECT status, owner_xid IS NOT DISTINCT FROM \(ownerToken) AS owned FROM \(identifier: schema).workflow_status
                    WHERE workflow_uuid = \(sender)
                ), sent AS (
                    INSERT INTO \(identifier: schema).notifications (message_uuid, destination_uuid, topic, message, serialization)
                    SELECT \(messageID), \(destination), \(topic), \(message), 'portable_json' FROM owner WHERE owner.owned
                    ON CONFLICT (message_uuid) DO NOTHING
                ), recorded AS (
                    INSERT INTO \(identifier: schema).operation_outputs
                        (workflow_uuid, function_id, function_name, output, serialization, started_at_epoch_ms, completed_at_epoch_ms)
                    SELECT \(sender), \(stepID)::int4, 'DBOS.send', 'null', 'portable_json', \(now)::bigint, \(now)::bigint
                    FROM owner WHERE owner.owned
                    ON CONFLICT (workflow_uuid, function_id) DO NOTHING
                    RETURNING 1
                )
                SELECT owner.status, owner.owned, (SELECT count(*) FROM recorded) FROM owner
                """))
    }

    /// Sends a message from outside any workflow; the same `messageID` sent again is one message.
    func sendFromOutside(messageID: String, destination: String, topic: String, message: String) async throws {
        _ = try await messagingQuery(
            "send a message", workflowID: destination,
            """
            INSERT INTO \(identifier: schema).notifications (message_uuid, destination_uuid, topic, message, serialization)
            VALUES (\(messageID), \(destination), \(topic), \(message), 'portable_json')
            ON CONFLICT (message_uuid) DO NOTHING
            """)
    }

    /// Whether the `notifications` table has a trigger that NOTIFYs each new message, as DBOS creates it. A schema
    /// DBOS built with LISTEN/NOTIFY turned off has none, and then only looking in the table finds messages.
    func hasMessageTrigger() async throws -> Bool {
        let table = SQLIdentifier.quote(schema) + ".notifications"
        let result = try await query(
            "look for the message trigger",
            """
            SELECT count(*) FROM pg_trigger
            WHERE tgrelid = to_regclass(\(table)) AND tgname = 'dbos_notifications_trigger' AND tgenabled <> 'D'
            """)
        return try (result.decodeFirst(Int.self) ?? 0) > 0
    }

    /// A consumed message, or nil if none was waiting.
    struct ReceiveOutcome: Sendable {
        var write: OwnedWrite
        var message: String?
        var serialization: String?
    }

    /// Consumes the oldest unconsumed message of the topic and checkpoints it in the same statement, only while
    /// this run owns the workflow.
    func receive(workflowID: String, topic: String, stepID: Int, ownerToken: String) async throws -> ReceiveOutcome {
        let now = WorkflowContext.nowMilliseconds()
        let result = try await query(
            "receive a message", workflowID: workflowID,
            """
            WITH owner AS (
                SELECT status, owner_xid IS NOT DISTINCT FROM \(ownerToken) AS owned FROM \(identifier: schema).workflow_status
                WHERE workflow_uuid = \(workflowID)
            ), taken AS (
                UPDATE \(identifier: schema).notifications SET consumed = true, consumed_by_function_id = \(stepID)::int4
                WHERE message_uuid = (
                    SELECT message_uuid FROM \(identifier: schema).notifications
                    WHERE destination_uuid = \(workflowID) AND topic = \(topic) AND NOT consumed
                    ORDER BY created_at_epoch_ms, message_uuid
                    LIMIT 1 FOR UPDATE SKIP LOCKED
                ) AND EXISTS (SELECT 1 FROM owner WHERE owner.owned)
                RETURNING message, serialization
            ), recorded AS (
                INSERT INTO \(identifier: schema).operation_outputs
                    (workflow_uuid, function_id, function_name, output, serialization, started_at_epoch_ms, completed_at_epoch_ms)
                SELECT \(workflowID), \(stepID)::int4, 'DBOS.recv', taken.message, 'portable_json', \(now)::bigint, \(now)::bigint
                FROM taken
                ON CONFLICT (workflow_uuid, function_id) DO NOTHING
            )
            SELECT owner.status, owner.owned, taken.message, taken.serialization
            FROM owner LEFT JOIN taken ON true
            """)
        let row = try result.decodeFirst(String?.self, Bool?.self, String?.self, String?.self)
        return ReceiveOutcome(
            write: OwnedWrite(workflowStatus: row?.0 ?? nil, stillOwner: (row?.1 ?? nil) ?? false),
            message: row?.2 ?? nil,
            serialization: row?.3 ?? nil
        )
    }

    // MARK: - Events

    /// Sets an event: the latest value, its history row and the checkpoint in one statement; the NOTIFY is
    /// delivered at commit.
    func setEvent(workflowID: String, key: String, value: String, stepID: Int, ownerToken: String) async throws
        -> OwnedWrite
    {
        let now = WorkflowContext.nowMilliseconds()
        return try OwnedWrite(
            await query(
                "set an event", workflowID: workflowID,
                """
                WITH owner AS (
                    SELECT status, owner_xid IS NOT DISTINCT FROM \(ownerToken) AS owned FROM \(identifier: schema).workflow_status
                    WHERE workflow_uuid = \(workflowID)
                ), latest AS (
                    INSERT INTO \(identifier: schema).workflow_events (workflow_uuid, key, value, serialization)
                    SELECT \(workflowID), \(key), \(value), 'portable_json' FROM owner WHERE owner.owned
                    ON CONFLICT (workflow_uuid, key) DO UPDATE SET value = EXCLUDED.value, serialization = EXCLUDED.serialization
                ), history AS (
                    INSERT INTO \(identifier: schema).workflow_events_history (workflow_uuid, function_id, key, value, serialization)
                    SELECT \(workflowID), \(stepID)::int4, \(key), \(value), 'portable_json' FROM owner WHERE owner.owned
                    ON CONFLICT (workflow_uuid, function_id, key) DO UPDATE SET value = EXCLUDED.value
                ), recorded AS (
                    INSERT INTO \(identifier: schema).operation_outputs
                        (workflow_uuid, function_id, function_name, output, serialization, started_at_epoch_ms, completed_at_epoch_ms)
                    SELECT \(workflowID), \(stepID)::int4, 'DBOS.setEvent', 'null', 'portable_json', \(now)::bigint, \(now)::bigint
                    FROM owner WHERE owner.owned
                    ON CONFLICT (workflow_uuid, function_id) DO NOTHING
                ), notified AS (
                    SELECT pg_notify(\(NotificationListener.eventsChannel), \(workflowID) || '::' || \(key)) FROM owner WHERE owner.owned
                )
                SELECT owner.status, owner.owned, (SELECT count(*) FROM notified) FROM owner
                """))
    }

    /// The latest value of an event and its format, or nil when it has not been set.
    func getEvent(workflowID: String, key: String) async throws -> (value: String, serialization: String?)? {
        let result = try await query(
            "read an event", workflowID: workflowID,
            """
            SELECT value, serialization FROM \(identifier: schema).workflow_events
            WHERE workflow_uuid = \(workflowID) AND key = \(key)
            """)
        guard let (value, serialization) = try result.decodeFirst(String?.self, String?.self), let value else {
            return nil
        }
        return (value, serialization)
    }

    // MARK: - Streams

    /// Appends a value to a stream at its next offset; the value, the checkpoint and the NOTIFY commit together.
    func appendToStream(
        workflowID: String, key: String, value: String, stepID: Int, operation: String, ownerToken: String
    ) async throws -> OwnedWrite {
        let now = WorkflowContext.nowMilliseconds()
        return try OwnedWrite(
            await query(
                "write to stream", workflowID: workflowID,
                """
                WITH owner AS (
                    SELECT status, owner_xid IS NOT DISTINCT FROM \(ownerToken) AS owned FROM \(identifier: schema).workflow_status
                    WHERE workflow_uuid = \(workflowID) FOR NO KEY UPDATE
                ), appended AS (
                    INSERT INTO \(identifier: schema).streams (workflow_uuid, key, value, "offset", function_id, serialization)
                    SELECT \(workflowID), \(key), \(value),
                           COALESCE((SELECT max("offset") FROM \(identifier: schema).streams
                                     WHERE workflow_uuid = \(workflowID) AND key = \(key)), -1) + 1,
                           \(stepID)::int4, 'portable_json'
                    FROM owner WHERE owner.owned
                    RETURNING "offset"
                ), recorded AS (
                    INSERT INTO \(identifier: schema).operation_outputs
                        (workflow_uuid, function_id, function_name, output, serialization, started_at_epoch_ms, completed_at_epoch_ms)
                    SELECT \(workflowID), \(stepID)::int4, \(operation), 'null', 'portable_json', \(now)::bigint, \(now)::bigint
                    FROM appended
                    ON CONFLICT (workflow_uuid, function_id) DO NOTHING
                ), notified AS (
                    SELECT pg_notify(\(Self.streamsChannel), \(workflowID) || '::' || \(key)) FROM appended
                )
                SELECT owner.status, owner.owned, (SELECT count(*) FROM notified) FROM owner
                """))
    }

    /// The workflow's status and the stream's value at `offset` (nil when none is there yet), from one snapshot,
    /// so a reader never misses a value written just before the workflow finished; nil when no such workflow.
    func streamValue(workflowID: String, key: String, offset: Int) async throws -> (
        status: String?, value: String?, serialization: String?
    )? {
        let result = try await query(
            "read stream", workflowID: workflowID,
            """
            SELECT ws.status, st.value, st.serialization
            FROM \(identifier: schema).workflow_status ws
            LEFT JOIN \(identifier: schema).streams st
                   ON st.workflow_uuid = ws.workflow_uuid AND st.key = \(key) AND st."offset" = \(offset)
            WHERE ws.workflow_uuid = \(workflowID)
            """)
        return try result.decodeFirst(String?.self, String?.self, String?.self).map {
            (status: $0, value: $1, serialization: $2)
        }
    }

    /// Like ``query(_:workflowID:_:)``, but a message to a workflow that does not exist (a foreign-key
    /// violation) becomes ``DurableError/Code/workflowNotFound``.
    private func messagingQuery(_ what: String, workflowID: String, _ statement: PGQuery) async throws -> QueryResult {
        do {
            return try await query(what, workflowID: workflowID, statement)
        } catch let error as DurableError where error.sqlState == "23503" {
            throw DurableError(
                .workflowNotFound,
                "the destination workflow does not exist; messages can only be sent to a workflow that has been started"
            )
        }
    }
}

extension SystemDatabase.OwnedWrite {
    /// Read from a result whose first two columns are the workflow's status and whether the run still owns it.
    init(_ result: QueryResult) throws {
        let row = try result.decodeFirst(String?.self, Bool?.self)
        self.init(workflowStatus: row?.0 ?? nil, stillOwner: (row?.1 ?? nil) ?? false)
    }
}
