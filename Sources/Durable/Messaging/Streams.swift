import Foundation

extension WorkflowContext {
    /// Appends `value` to the stream `key` of this workflow, for readers outside (progress, tokens for a
    /// frontend). Checkpointed: a recovered workflow does not append it twice.
    public func writeStream<Value: Encodable & Sendable>(_ key: String, _ value: Value) async throws {
        let encoded = try PortableJSON.encode(
            value, limit: engine.configuration.maxPayloadBytes, what: "the stream value")
        try await appendToStream(key, encoded, operation: "DBOS.writeStream")
    }

    /// Closes the stream `key`: readers finish after the values written so far.
    public func closeStream(_ key: String) async throws {
        try await appendToStream(key, SystemDatabase.streamClosedSentinel, operation: "DBOS.closeStream")
    }

    private func appendToStream(_ key: String, _ value: String, operation: String) async throws {
        try ArgumentChecks.text(key, "the stream key", workflowID: workflowID)
        let _: NoOutput = try await self.operation(operation) { stepID in
            let write = try await engine.database.appendToStream(
                workflowID: workflowID, key: key, value: value, stepID: stepID, operation: operation,
                ownerToken: ownerToken
            )
            try ensureStillOwner(status: write.workflowStatus, stillOwner: write.stillOwner)
            return NoOutput()
        }
    }
}

extension DurableRuntime {
    /// Reads the stream `key` of workflow `workflowID` from `offset`, in order, until the workflow closes it or
    /// finishes. New values arrive as soon as they are written (LISTEN/NOTIFY, with polling as the fallback).
    ///
    /// ```swift
    /// for try await token in durable.readStream("chat-42", key: "tokens", as: String.self) { send(token) }
    /// ```
    public func readStream<Value: Decodable & Sendable>(
        _ workflowID: String, key: String, from offset: Int = 0, as type: Value.Type = Value.self
    ) -> AsyncThrowingStream<Value, any Error> {
        AsyncThrowingStream { continuation in
            let reader = Task {
                do {
                    try ArgumentChecks.text(key, "the stream key", workflowID: workflowID)
                    let engine = try await launchedEngine()
                    var next = max(0, offset)
                    while true {
                        // The next value, or the end: the stream ends when it is closed or its workflow finishes.
                        // At least once a second: a workflow that ends without closing its stream sends no
                        // notification, and its readers should end soon after it (readers are few).
                        let found = try await engine.listener.waitFor(
                            channel: SystemDatabase.streamsChannel, payload: workflowID + "::" + key, until: nil,
                            longestSleep: .seconds(1)
                        ) { () -> StreamItem? in
                            guard
                                let row = try await engine.database.streamValue(
                                    workflowID: workflowID, key: key, offset: next)
                            else {
                                throw DurableError(
                                    .workflowNotFound, "no workflow with this ID exists", workflowID: workflowID)
                            }
                            if let value = row.value {
                                return value == SystemDatabase.streamClosedSentinel
                                    ? .end : .value(value, serialization: row.serialization)
                            }
                            if let state = row.status.flatMap(WorkflowState.init), state.isFinal { return .end }
                            return nil
                        }
                        guard case .value(let value, let serialization) = found else { break }
                        if let serialization, serialization != PortableJSON.formatName {
                            throw DurableError(
                                .corruptedCheckpoint,
                                "stream '\(ArgumentChecks.shown(key))' holds a value in the '\(serialization)' format, which this library cannot read",
                                workflowID: workflowID)
                        }
                        do {
                            continuation.yield(
                                try PortableJSON.decode(
                                    Value.self, from: value, what: "a value of stream '\(ArgumentChecks.shown(key))'"))
                        } catch var error as DurableError {
                            error.workflowID = workflowID
                            throw error
                        }
                        next += 1
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in reader.cancel() }
        }
    }
}

/// What a stream reader found at its next offset.
private enum StreamItem: Sendable {
    case value(String, serialization: String?)
    case end
}
