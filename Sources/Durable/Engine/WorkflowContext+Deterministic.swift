import Foundation

extension WorkflowContext {
    /// The current time, recorded as a step: a replay sees the time of the first run, so code that branches on
    /// it takes the same path again.
    public func now() async throws -> Date {
        try await step("DBOS.now") { Date() }
    }

    /// A random UUID, recorded as a step so a replay sees the same one (for idempotency keys, for example).
    public func randomUUID() async throws -> UUID {
        try await step("DBOS.randomUUID") { UUID() }
    }

    /// A random integer in `range`, recorded as a step so a replay sees the same one.
    public func random(in range: ClosedRange<Int>) async throws -> Int {
        try await step("DBOS.random") { Int.random(in: range) }
    }
}
