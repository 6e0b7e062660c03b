/// A durable workflow: code that survives crashes by checkpointing each step in Postgres.
///
/// Register an instance with ``DurableRuntime/register(_:)``; the runtime finds it again by ``name`` when it
/// recovers a workflow after a restart. Dependencies (HTTP clients, repositories) come in through the
/// initializer as usual. The body must be deterministic apart from its steps: put every side effect and every
/// non-deterministic value (time, randomness, network) inside ``WorkflowContext/step(_:retry:isolation:_:)->Output``.
///
/// ```swift
/// struct BookTrip: Workflow {
///     static let name = "book-trip"
///     let airline: Airline
///
///     func run(_ ctx: WorkflowContext, _ trip: Trip) async throws -> Itinerary {
///         let seat = try await ctx.step("book-flight") { try await airline.book(trip) }
///         return Itinerary(seat: seat)
///     }
/// }
/// ```
public protocol Workflow: Sendable {
    /// The workflow's input, stored as DBOS portable JSON.
    associatedtype Input: Codable & Sendable
    /// The workflow's result, stored as DBOS portable JSON.
    associatedtype Output: Codable & Sendable

    /// The durable name stored with every run. Changing it strands runs recorded under the old name.
    static var name: String { get }

    /// The workflow body. Called again after a crash; completed steps then return their recorded results.
    func run(_ ctx: WorkflowContext, _ input: Input) async throws -> Output
}
