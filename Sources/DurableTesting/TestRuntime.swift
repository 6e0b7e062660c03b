import Durable
import Logging

/// Runs `body` with a launched `DurableRuntime` on a database of its own, and shuts the runtime down
/// afterwards, also when `body` throws.
///
/// The database is created for this call and dropped afterwards (see ``withTestDatabase(logger:isolation:_:)``:
/// on the server of `DATABASE_URL` when it is set, else on a throwaway cluster this test process starts once and
/// shares), so tests never see each other's workflows and can run in parallel.
///
/// ```swift
/// @Test func booksATrip() async throws {
///     try await withTestRuntime(register: { $0.register(BookTrip(airline: FakeAirline())) }) { runtime in
///         let handle = try await runtime.start(BookTrip.self, trip)
///         #expect(try await handle.result(timeout: .seconds(10)).seat == "15F")
///     }
/// }
/// ```
///
/// The runtime's configuration starts from test-friendly values, which `configure` may change: the new
/// database's URL, executor ID `durable-testing` and application version `test` (so `DBOS__VMID` and
/// `DBOS__APPVERSION` in the environment do not leak in), and a pool of 4 connections (tests in parallel share one
/// server's connection limit).
///
/// - Parameters:
///   - configure: adjusts the configuration before the runtime is created.
///   - logger: the runtime's and DurableTesting's logger. The default discards everything.
///   - register: registers workflows and queues on the runtime; called once, before launch.
///   - isolation: the actor `body` runs on; the caller's, by default. Leave it out.
///   - body: the test, with the launched runtime.
/// - Returns: what `body` returns.
/// - Throws: `DurableError` when the database cannot be had or the runtime cannot launch (see
///   ``withTestDatabase(logger:isolation:_:)``), and whatever `body` throws.
public func withTestRuntime<Result>(
    configure: (inout DurableConfiguration) -> Void = { _ in },
    logger: Logger = Logger(label: "durable-testing", factory: { _ in SwiftLogNoOpLogHandler() }),
    register: (DurableRuntime) -> Void = { _ in },
    isolation: isolated (any Actor)? = #isolation,
    _ body: (DurableRuntime) async throws -> Result
) async throws -> Result {
    let database = try await TestDatabase.create(logger: logger)
    var configuration = DurableConfiguration(
        databaseURL: database.url,
        executorID: "durable-testing",
        applicationVersion: "test",
        maxConnections: 4
    )
    configure(&configuration)
    let runtime = DurableRuntime(configuration: configuration, logger: logger)
    register(runtime)
    let result: Result
    do {
        try await runtime.launch()
        result = try await body(runtime)
    } catch {
        await runtime.shutdown()
        await database.drop()
        throw error
    }
    await runtime.shutdown()
    await database.drop()
    return result
}
