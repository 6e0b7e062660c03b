import Durable

/// Waiting for a result with a time limit, so that a workflow that never finishes fails a test instead of hanging it.
extension WorkflowHandle {
    /// Waits for the workflow to finish, at most `timeout`, and returns its result.
    ///
    /// For tests: a workflow that never finishes (waiting for a message nobody sends, a step that hangs) fails the
    /// test with a clear error instead of hanging it. The workflow itself is left as it is.
    ///
    /// ```swift
    /// let itinerary = try await handle.result(timeout: .seconds(10))
    /// ```
    ///
    /// - Throws: `DurableError` with code `timedOut` (naming the workflow and its status then) when it has not
    ///   finished in time; `invalidArgument` for a timeout that is not positive; otherwise what
    ///   `result(minimumPollingInterval:maximumPollingInterval:)` throws, such as
    ///   `workflowFailed` when the workflow threw.
    public func result(timeout: Duration) async throws -> Output {
        guard timeout > .zero else {
            throw DurableError(.invalidArgument, "the timeout must be positive (got \(timeout))", workflowID: id)
        }
        if case .value(let output) = try await finishing(within: timeout, { try await self.result() }) {
            return output
        }
        // The status, for the message; looked up with a limit of its own, as the database may be what is stuck.
        var status = ""
        if case .value(let state)? = try? await finishing(within: .seconds(2), { try await self.status().rawState }) {
            status = "; its status is \(state)"
        }
        throw DurableError(.timedOut, "the workflow did not finish within \(timeout)\(status)", workflowID: id)
    }
}
