import LibPQ

extension SystemDatabase {
    /// Whether a messaging write found the workflow still owned by the calling run.
    struct OwnedWrite: Sendable {
        var workflowStatus: String?
        var stillOwner: Bool
    }

    func sendFromWorkflow(messageID: String, destination: String, topic: String, message: String, sender: String, stepID: Int, ownerToken: String) async throws -> OwnedWrite {
        let result = try await messagingQuery("send a message", workflowID: sender, messaging.sendFromWorkflow, [
            messageID, destination, topic, message, sender, stepID, WorkflowContext.nowMilliseconds(), ownerToken,
        ])
        return OwnedWrite(workflowStatus: result.first?.string(0), stillOwner: result.first?.bool(1) ?? false)
    }

    /// Whether the `notifications` table has a trigger that NOTIFYs each new message, as DBOS creates it. A schema
    /// DBOS built with LISTEN/NOTIFY turned off has none, and then only looking in the table finds messages.
    func hasMessageTrigger() async throws -> Bool {
        let result = try await query(
            "look for the message trigger",
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = to_regclass($1) AND tgname = 'dbos_notifications_trigger' AND tgenabled <> 'D'",
            [SQLIdentifier.quote(schema) + ".notifications"]
        )
        return (result.first?.int(0) ?? 0) > 0
    }

    func sendFromOutside(messageID: String, destination: String, topic: String, message: String) async throws {
        _ = try await messagingQuery("send a message", workflowID: destination, messaging.sendFromOutside, [messageID, destination, topic, message])
    }

    /// A consumed message, or nil if none was waiting.
    struct ReceiveOutcome: Sendable {
        var write: OwnedWrite
        var message: String?
        var serialization: String?
    }

    func receive(workflowID: String, topic: String, stepID: Int, ownerToken: String) async throws -> ReceiveOutcome {
        let result = try await query("receive a message", workflowID: workflowID, messaging.receive, [
            workflowID, topic, stepID, WorkflowContext.nowMilliseconds(), ownerToken,
        ])
        let row = result.first
        return ReceiveOutcome(
            write: OwnedWrite(workflowStatus: row?.string(0), stillOwner: row?.bool(1) ?? false),
            message: row?.string(2),
            serialization: row?.string(3)
        )
    }

    func setEvent(workflowID: String, key: String, value: String, stepID: Int, ownerToken: String) async throws -> OwnedWrite {
        let result = try await query("set an event", workflowID: workflowID, messaging.setEvent, [
            workflowID, key, value, stepID, WorkflowContext.nowMilliseconds(), ownerToken,
        ])
        return OwnedWrite(workflowStatus: result.first?.string(0), stillOwner: result.first?.bool(1) ?? false)
    }

    /// The latest value of an event and its format, or nil when it has not been set.
    func getEvent(workflowID: String, key: String) async throws -> (value: String, serialization: String?)? {
        let result = try await query("read an event", workflowID: workflowID, messaging.getEvent, [workflowID, key])
        guard let row = result.first, let value = row.string(0) else { return nil }
        return (value, row.string(1))
    }

    /// Like ``query(_:workflowID:_:_:)``, but a message to a workflow that does not exist (a foreign-key
    /// violation) becomes ``DurableError/Code/workflowNotFound``.
    private func messagingQuery(_ what: String, workflowID: String, _ statement: String, _ parameters: [any PGParameter]) async throws -> QueryResult {
        do {
            return try await query(what, workflowID: workflowID, statement, parameters)
        } catch let error as DurableError where error.sqlState == "23503" {
            throw DurableError(.workflowNotFound, "the destination workflow does not exist; messages can only be sent to a workflow that has been started")
        }
    }
}
