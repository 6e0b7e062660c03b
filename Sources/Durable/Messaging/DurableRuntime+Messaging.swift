import Foundation

extension DurableRuntime {
    /// Sends `message` to a workflow from outside any workflow (an HTTP handler, a script).
    ///
    /// - Parameters:
    ///   - destination: the receiving workflow's ID; it must exist.
    ///   - topic: the topic the workflow receives on; nil is DBOS's default topic.
    ///   - message: the message, recorded as portable JSON; the receiver decodes it with
    ///     ``WorkflowContext/recv(_:topic:timeout:)``.
    ///   - idempotencyKey: makes a retried send deliver once: sends with the same key to the same destination
    ///     are one message.
    /// - Throws: ``DurableError/Code/workflowNotFound`` if the destination does not exist.
    public func send<Message: Encodable & Sendable>(
        to destination: String, topic: String? = nil, _ message: Message, idempotencyKey: String? = nil
    ) async throws {
        try Self.validateWorkflowID(destination)
        try ArgumentChecks.text(topic ?? nullTopic, "the topic", workflowID: destination)
        try ArgumentChecks.text(idempotencyKey, "the idempotency key", workflowID: destination)
        let engine = try await launchedEngine()
        let encoded = try PortableJSON.encode(message, limit: configuration.maxPayloadBytes, what: "the message")
        // DBOS derives the message ID from the key the same way, so a retried send from either library dedupes.
        let messageID = idempotencyKey.map { "\($0)::\(destination)" } ?? UUID().uuidString.lowercased()
        try await engine.database.sendFromOutside(
            messageID: messageID, destination: destination, topic: topic ?? nullTopic, message: encoded)
    }

    /// Waits up to `timeout` for workflow `workflowID` to set event `key`, and returns its latest value.
    ///
    /// - Returns: the value, or nil if it was not set within `timeout`.
    public func getEvent<Value: Decodable & Sendable>(
        _ workflowID: String, key: String, as type: Value.Type = Value.self, timeout: Duration = .seconds(60)
    ) async throws -> Value? {
        guard timeout >= .zero, timeout <= longestWait else {
            throw DurableError(
                .invalidArgument, "getEvent timeout must be between zero and ten years (got \(timeout))",
                workflowID: workflowID)
        }
        try ArgumentChecks.text(key, "the event key", workflowID: workflowID)
        let engine = try await launchedEngine()
        let deadline = ContinuousClock.now.advanced(by: timeout)
        let found = try await engine.listener.waitFor(
            channel: NotificationListener.eventsChannel, payload: workflowID + "::" + key, until: deadline
        ) {
            try await engine.database.getEvent(workflowID: workflowID, key: key).map {
                Event(value: $0.value, serialization: $0.serialization)
            }
        }
        guard let found else { return nil }
        if let serialization = found.serialization, serialization != PortableJSON.formatName {
            throw DurableError(
                .corruptedCheckpoint,
                "event '\(ArgumentChecks.shown(key))' was written in the '\(serialization)' format, which this library cannot read",
                workflowID: workflowID)
        }
        do {
            return try PortableJSON.decode(Value.self, from: found.value, what: "event '\(ArgumentChecks.shown(key))'")
        } catch var error as DurableError {
            error.workflowID = workflowID
            throw error
        }
    }
}

/// An event's recorded value and its format, as a wait finds it.
private struct Event: Sendable {
    var value: String
    var serialization: String?
}
