import Foundation

/// The DBOS topic name stored for messages sent without a topic.
let nullTopic = "__null__topic__"

/// The longest wait a workflow may ask for; beyond it a typo (milliseconds for seconds) is more likely than intent.
let longestWait = Duration.seconds(10 * 366 * 86_400)

extension WorkflowContext {
    /// Sleeps durably. The wake-up time is checkpointed before sleeping, so after a crash and recovery only the
    /// remaining time is slept (none, if it has passed). A sleeping workflow holds no database connection, and a
    /// sleep longer than ``DurableConfiguration/parkSleepsLongerThan`` holds no memory either: the run ends and
    /// the workflow is replayed from its checkpoints when it wakes.
    ///
    /// - Throws: ``DurableError/Code/invalidArgument`` for a negative or absurdly long duration (over ten years).
    public func sleep(for duration: Duration) async throws {
        // Inside a step's body it is a plain sleep, as in DBOS: the step as a whole is what is checkpointed (and
        // a park there would end the step as if it had failed).
        if StepScope.isInsideStep {
            try await Task.sleep(for: duration)
            return
        }
        let wake = try await durableDeadline(after: duration, what: "sleep")
        // A long sleep gives its memory back: the run ends here and the engine replays the workflow at `wake`.
        if let threshold = engine.configuration.parkSleepsLongerThan,
            wake - Date().timeIntervalSince1970 > Double(WorkflowEngine.milliseconds(threshold)) / 1000
        {
            throw park(until: wake)
        }
        try await Self.sleep(until: wake)
    }

    /// Sends `message` to the workflow `destination`, once: the message and this workflow's checkpoint commit
    /// together, so a recovered workflow never sends it again.
    ///
    /// - Throws: ``DurableError/Code/workflowNotFound`` if the destination workflow does not exist.
    public func send<Message: Encodable & Sendable>(to destination: String, topic: String? = nil, _ message: Message)
        async throws
    {
        try DurableRuntime.validateWorkflowID(destination)
        try ArgumentChecks.text(topic ?? nullTopic, "the topic", workflowID: destination)
        let _: NoOutput = try await operation("DBOS.send") { stepID in
            let encoded = try PortableJSON.encode(
                message, limit: engine.configuration.maxPayloadBytes, what: "the message")
            let write = try await engine.database.sendFromWorkflow(
                messageID: UUID().uuidString.lowercased(), destination: destination, topic: topic ?? nullTopic,
                message: encoded, sender: workflowID, stepID: stepID, ownerToken: ownerToken
            )
            try checkOwnership(write)
            return NoOutput()
        }
    }

    /// Receives the oldest message of `topic` sent to this workflow, waiting up to `timeout` for one.
    ///
    /// The wait survives crashes: its deadline is checkpointed, and after recovery only the remaining time is
    /// waited. A message is consumed exactly once, in the same commit as this workflow's checkpoint of it.
    /// A new message wakes the waiter at once through LISTEN/NOTIFY, from any process; a periodic check of the
    /// database covers lost notifications.
    ///
    /// - Returns: the message, or nil when `timeout` passed without one.
    /// - Throws: ``DurableError/Code/corruptedCheckpoint`` when the message does not decode as `Message`
    ///   (this fails the workflow), ``DurableError/Code/invalidArgument`` for a negative or absurd timeout.
    public func recv<Message: Decodable & Sendable>(
        _ type: Message.Type = Message.self, topic: String? = nil, timeout: Duration = .seconds(60)
    ) async throws -> Message? {
        let topic = topic ?? nullTopic
        try ArgumentChecks.text(topic, "the topic", workflowID: workflowID)
        let received = try await operation(
            "DBOS.recv",
            replay: { checkpoint, stepID in
                // Like DBOS, the wait's deadline took the next position as a sleep checkpoint: skip it too.
                _ = try beginOperation("DBOS.sleep", nested: true)
                return try replay(checkpoint, as: RawJSON.self, stepID: stepID, name: "DBOS.recv")
            }, perform: { stepID in try await receive(topic: topic, stepID: stepID, timeout: timeout) })
        return try decodeMessage(received, as: Message.self)
    }

    /// A `recv`'s first run: records the wait's deadline, then takes a message (or, at the deadline, records that
    /// none came). Returns the message's JSON, `null` on timeout.
    private func receive(topic: String, stepID: Int, timeout: Duration) async throws -> RawJSON {
        let deadline = try await durableDeadline(after: timeout, what: "recv timeout", nested: true)
        // The recorded deadline (epoch seconds, shared with other processes) as a point on this process's clock.
        let remaining = Date(timeIntervalSince1970: deadline).timeIntervalSinceNow
        let until = ContinuousClock.now.advanced(by: .milliseconds(Int64(max(0, remaining) * 1000) + 1))
        let message = try await engine.listener.waitFor(
            channel: NotificationListener.messagesChannel, payload: workflowID + "::" + topic, until: until
        ) { () -> String? in
            let outcome = try await engine.database.receive(
                workflowID: workflowID, topic: topic, stepID: stepID, ownerToken: ownerToken)
            try checkOwnership(outcome.write)
            guard let message = outcome.message else { return nil }
            if let serialization = outcome.serialization, serialization != PortableJSON.formatName {
                throw fail(
                    DurableError(
                        .corruptedCheckpoint,
                        "a message on topic '\(ArgumentChecks.shown(topic))' was sent in the '\(serialization)' format, which this library cannot read; send it as portable JSON",
                        workflowID: workflowID))
            }
            return message
        }
        if let message { return RawJSON(text: message) }
        // Timed out: the empty receipt is the checkpoint, so a replay times out at the same point.
        _ = try await record(checkpoint(stepID, "DBOS.recv", output: "null"), as: RawJSON.self)
        return RawJSON(text: "null")
    }

    /// Publishes `value` under `key` for anyone to read with ``DurableRuntime/getEvent(_:key:as:timeout:)``.
    /// Setting the key again replaces the value; every value is kept in DBOS's event history.
    public func setEvent<Value: Encodable & Sendable>(_ key: String, _ value: Value) async throws {
        try ArgumentChecks.text(key, "the event key", workflowID: workflowID)
        let _: NoOutput = try await operation("DBOS.setEvent") { stepID in
            let encoded = try PortableJSON.encode(
                value, limit: engine.configuration.maxPayloadBytes, what: "the event value")
            let write = try await engine.database.setEvent(
                workflowID: workflowID, key: key, value: encoded, stepID: stepID, ownerToken: ownerToken)
            try checkOwnership(write)
            return NoOutput()
        }
    }

    // MARK: - Helpers

    /// Takes a position for a `DBOS.sleep` checkpoint holding `now + duration` (epoch seconds, as DBOS Python
    /// stores it), or reads the one recorded there, and returns that deadline. `nested`: taken inside another
    /// operation (a `recv`), see ``beginOperation(_:nested:)``.
    func durableDeadline(after duration: Duration, what: String, nested: Bool = false) async throws -> Double {
        guard duration >= .zero else {
            throw DurableError(
                .invalidArgument, "\(what) duration must not be negative (got \(duration))", workflowID: workflowID)
        }
        guard duration <= longestWait else {
            throw DurableError(
                .invalidArgument, "\(what) duration \(duration) is longer than ten years; check its unit",
                workflowID: workflowID)
        }
        return try await operation("DBOS.sleep", nested: nested) { stepID in
            let seconds = Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
            let deadline = Date().timeIntervalSince1970 + seconds
            let encoded = try PortableJSON.encode(
                deadline, limit: engine.configuration.maxPayloadBytes, what: "the wake-up time")
            let adopted = try await record(checkpoint(stepID, "DBOS.sleep", output: encoded), as: Double.self)
            return adopted ?? deadline
        }
    }

    static func sleep(until deadline: Double) async throws {
        let remaining = Date(timeIntervalSince1970: deadline).timeIntervalSinceNow
        if remaining > 0 { try await Task.sleep(for: .milliseconds(Int64((remaining * 1000).rounded(.up)))) }
    }

    private func checkOwnership(_ write: SystemDatabase.OwnedWrite) throws {
        try ensureStillOwner(status: write.workflowStatus, stillOwner: write.stillOwner)
    }

    private func decodeMessage<Message: Decodable>(_ raw: RawJSON, as type: Message.Type) throws -> Message? {
        if raw.text == "null" { return nil }
        do {
            return try PortableJSON.decode(Message.self, from: raw.text, what: "a received message")
        } catch var error as DurableError {
            error.workflowID = workflowID
            throw fail(error)
        }
    }
}

/// A JSON value kept as text, so a checkpoint can be replayed before knowing the type it decodes to.
struct RawJSON: Decodable, Sendable {
    var text: String
    init(text: String) { self.text = text }
    init(from decoder: any Decoder) throws {
        throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "RawJSON is decoded by hand"))
    }
}
