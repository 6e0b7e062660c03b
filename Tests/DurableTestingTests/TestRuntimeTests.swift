import Durable
import DurableTesting
import EmbeddedPostgres
import Foundation
import LibPQ
import Logging
import Synchronization
import Testing

@Suite("withTestRuntime, withTestDatabase and result(timeout:)")
struct TestRuntimeTests {
    @Test("a test runtime is launched on a database of its own, which is dropped afterwards")
    func ownDatabaseDroppedAfterwards() async throws {
        let name = try await withTestRuntime(register: registerTestWorkflows) { (runtime) async throws -> String in
            #expect(try await runtime.start(ThreeSteps.self, 1).result(timeout: .seconds(60)) == 23)
            let name = try await Server.currentDatabase(runtime.configuration.databaseURL)
            #expect(name.hasPrefix("durable_test_"))
            #expect(try await Server.databaseExists(name))
            return name
        }
        #expect(try await Server.databaseExists(name) == false, "\(name) was not dropped")
        // Never the database DATABASE_URL names: a user's data is not touched.
        #expect(name != (try await Server.currentDatabase(SharedDatabase.url())))
    }

    @Test("tests running at once get different databases")
    func parallelCallsGetTheirOwnDatabases() async throws {
        async let first = withTestRuntime { runtime in runtime.configuration.databaseURL }
        async let second = withTestRuntime { runtime in runtime.configuration.databaseURL }
        let (a, b) = try await (first, second)
        #expect(a != b)
    }

    @Test("the runtime is shut down and the database dropped when the body throws")
    func cleanUpWhenTheBodyThrows() async throws {
        let kept = Mutex<(DurableRuntime, String)?>(nil)
        await #expect(throws: Refusal.self) {
            try await withTestRuntime(register: registerTestWorkflows) { runtime in
                let name = try await Server.currentDatabase(runtime.configuration.databaseURL)
                kept.withLock { $0 = (runtime, name) }
                throw Refusal()
            }
        }
        let (runtime, name) = try #require(kept.withLock { $0 })
        await expectDurableError(.notRunning) { try await runtime.start(ThreeSteps.self, 1) }
        #expect(try await Server.databaseExists(name) == false, "\(name) was not dropped")
    }

    @Test("configure adjusts the configuration, and the runtime logs to the logger passed in")
    func configurationAndLogger() async throws {
        let log = CapturedLog()
        try await withTestRuntime(
            configure: {
                $0.executorID = "custom-executor"
                $0.maxConnections = 3
            }, logger: log.logger
        ) { runtime in
            #expect(runtime.configuration.executorID == "custom-executor")
            #expect(runtime.configuration.maxConnections == 3)
            #expect(runtime.configuration.applicationVersion == "test")
        }
        #expect(log.lines.contains { $0.contains("durable runtime running") }, "\(log.lines)")
        #expect(log.lines.contains { $0.contains("durable runtime stopped") }, "\(log.lines)")
    }

    @Test("withTestDatabase gives a fresh, empty database and drops it")
    func freshDatabase() async throws {
        let name = try await withTestDatabase { (url) async throws -> String in
            #expect(
                try await Server.value(url, "SELECT count(*) FROM pg_namespace WHERE nspname = 'dbos'", as: Int.self)
                    == 0)
            return try await Server.currentDatabase(url)
        }
        #expect(name.hasPrefix("durable_test_"))
        #expect(try await Server.databaseExists(name) == false, "\(name) was not dropped")
    }

    @Test("result(timeout:) returns the result of a workflow that finishes in time")
    func resultInTime() async throws {
        try await withTestRuntime(register: registerTestWorkflows) { runtime in
            let handle = try await runtime.start(ThreeSteps.self, 5)
            #expect(try await handle.result(timeout: .seconds(60)) == 63)
        }
    }

    @Test("result(timeout:) throws timedOut, naming the status, for a workflow that does not finish")
    func resultTimesOut() async throws {
        try await withTestRuntime(register: registerTestWorkflows) { runtime in
            let handle = try await runtime.start(WaitsForever.self, 1, id: "waits-forever")
            let started = ContinuousClock.now
            let error = await expectDurableError(.timedOut) { try await handle.result(timeout: .milliseconds(300)) }
            #expect(ContinuousClock.now - started >= .milliseconds(300))
            #expect(error?.workflowID == "waits-forever")
            #expect(error?.message.contains("did not finish within") == true, "\(String(describing: error))")
            #expect(error?.message.contains("PENDING") == true, "\(String(describing: error))")
            await expectDurableError(.invalidArgument) { try await handle.result(timeout: .zero) }
        }
    }

    @Test("result(timeout:) passes on the workflow's own failure")
    func resultFailure() async throws {
        try await withTestRuntime(register: registerTestWorkflows) { runtime in
            let handle = try await runtime.start(ReleasesThenRefuses.self, 1)
            let error = await expectDurableError(.workflowFailed) { try await handle.result(timeout: .seconds(60)) }
            #expect(error?.errorName == "Refusal")
        }
    }

    @Test("a test database's URL keeps everything of the server URL but the database")
    func replacingTheDatabase() throws {
        #expect(
            try DatabaseURL.replacingDatabase(
                in: "postgresql://u:p%40ss@db.example:5433/app?sslmode=require", with: "t_1")
                == "postgresql://u:p%40ss@db.example:5433/t_1?sslmode=require")
        #expect(
            try DatabaseURL.replacingDatabase(in: "postgres://h1:5432,h2:5432", with: "t_1")
                == "postgres://h1:5432,h2:5432/t_1")
        #expect(
            try DatabaseURL.replacingDatabase(in: "host=db user=u dbname=app", with: "t_1")
                == "host=db user=u dbname=app dbname='t_1'")
        #expect(throws: EmbeddedPostgresError.self) {
            try DatabaseURL.replacingDatabase(in: "just-a-name", with: "t_1")
        }
    }
}

/// Plain SQL against the test server, outside the library.
enum Server {
    /// The first column of the first row of `sql`, run on a connection of its own to `url`.
    static func value<Value: PGDecodable>(
        _ url: String, _ sql: String, _ parameters: [any PGParameter] = [], as type: Value.Type
    ) async throws -> Value? {
        let connection = try await PGConnection.connect(
            PGConfiguration(
                connectionString: ConnectionString(url), connectTimeoutSeconds: 60, usePreparedStatements: false))
        do {
            let value = try await connection.query(sql, parameters).decodeFirst(Value.self)
            await connection.close()
            return value
        } catch {
            await connection.close()
            throw error
        }
    }

    /// The name of the database `url` connects to.
    static func currentDatabase(_ url: String) async throws -> String {
        try await value(url, "SELECT current_database()", as: String.self) ?? ""
    }

    static func databaseExists(_ name: String) async throws -> Bool {
        try await value(
            try await SharedDatabase.url(), "SELECT count(*) FROM pg_database WHERE datname = $1", [name], as: Int.self)
            == 1
    }
}

/// Log lines, for checking that a logger passed in is the one used.
final class CapturedLog: Sendable {
    private let captured = Mutex<[String]>([])
    var lines: [String] { captured.withLock { $0 } }

    var logger: Logger {
        Logger(label: "durable-testing-tests") { _ in Handler(log: self) }
    }

    private struct Handler: LogHandler {
        let log: CapturedLog
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .debug
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            log.captured.withLock { $0.append("\(event.level) \(event.message)") }
        }
    }
}
