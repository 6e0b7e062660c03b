import Durable
import EmbeddedPostgres
import LibPQ
import Logging

/// Runs `body` with the URL of a database of its own, created for this call and dropped afterwards.
///
/// The database lives on the server named by the `DATABASE_URL` environment variable when it is set: a new
/// database is created there (the role needs the `CREATEDB` privilege), so the data of the database the URL
/// names is never touched. Without `DATABASE_URL`, it lives on a throwaway PostgreSQL cluster that this test
/// process starts from the installed server binaries on first use (`initdb` and `pg_ctl` on `PATH`, or under
/// `/usr/lib/postgresql/*/bin`), shares between all its tests, and removes when it exits.
///
/// The database is dropped when `body` returns or throws, ending any session still connected to it
/// (PostgreSQL 13 and later). A failure to drop it is logged, not thrown.
///
/// ```swift
/// try await withTestDatabase { url in
///     let runtime = DurableRuntime(configuration: .init(databaseURL: url), logger: logger)
///     …
/// }
/// ```
///
/// - Parameters:
///   - logger: where DurableTesting logs (the embedded cluster's start-up, a database it could not drop). The
///     default discards everything.
///   - isolation: the actor `body` runs on; the caller's, by default. Leave it out.
///   - body: gets the new database's connection string: `DATABASE_URL` with only the database replaced (user,
///     password, host and query parameters are kept), or the embedded cluster's URL.
/// - Throws: `DurableError` with code `invalidConfiguration` when no PostgreSQL server is installed and
///   `DATABASE_URL` is not set, or `DATABASE_URL` is not a connection string; `connectionFailed` or
///   `databaseError` when the database cannot be created; and whatever `body` throws.
public func withTestDatabase<Result>(
    logger: Logger = Logger(label: "durable-testing", factory: { _ in SwiftLogNoOpLogHandler() }),
    isolation: isolated (any Actor)? = #isolation,
    _ body: (String) async throws -> Result
) async throws -> Result {
    let database = try await TestDatabase.create(logger: logger)
    let result: Result
    do {
        result = try await body(database.url)
    } catch {
        await database.drop()
        throw error
    }
    await database.drop()
    return result
}

/// One test's database and the server it was created on.
struct TestDatabase: Sendable {
    /// The database's name.
    let name: String
    /// Its connection string.
    let url: String
    /// The connection string of the server's database it was created from (`DATABASE_URL`, or the embedded
    /// cluster's `postgres` database).
    let serverURL: String
    let logger: Logger

    /// Creates a database with a fresh name on the test server, starting the embedded cluster if needed.
    static func create(logger: Logger) async throws -> TestDatabase {
        let serverURL: String
        do {
            serverURL = try await SharedDatabase.url(log: { line in logger.info("\(line)") })
        } catch let error as EmbeddedPostgresError {
            throw DurableError(.invalidConfiguration, "no database for the test: \(error.message)")
        }
        let name = DatabaseName.unique(prefix: "durable_test")
        let url: String
        do {
            url = try DatabaseURL.replacingDatabase(in: serverURL, with: name)
        } catch let error as EmbeddedPostgresError {
            throw DurableError(.invalidConfiguration, error.message)
        }
        do {
            try await withServerConnection(serverURL) {
                try await $0.executeWithoutValues(TestingStatements.createDatabase(name))
            }
        } catch let error as PGError {
            let role =
                DatabaseEnvironment.current.usesEmbeddedServer
                ? "" : " (the role of DATABASE_URL needs the CREATEDB privilege)"
            throw DurableError(
                error.isConnectionProblem ? .connectionFailed : .databaseError,
                "could not create a database for the test\(role): \(error)", sqlState: error.sqlState
            )
        }
        logger.debug("created a test database", metadata: ["database": "\(name)"])
        return TestDatabase(name: name, url: url, serverURL: serverURL, logger: logger)
    }

    /// Drops the database, ending the sessions still connected to it where the server can (13 and later).
    func drop() async {
        do {
            try await withServerConnection(serverURL) { connection in
                let version = try await connection.query(TestingStatements.serverVersion).decodeFirst(Int.self) ?? 0
                try await connection.executeWithoutValues(
                    TestingStatements.dropDatabase(name, force: version >= 130_000))
            }
            logger.debug("dropped the test database", metadata: ["database": "\(name)"])
        } catch {
            logger.warning(
                "could not drop the test database; drop it by hand",
                metadata: ["database": "\(name)", "error": "\(error)"])
        }
    }

    /// Runs `body` on a connection of its own to the server's database, closed afterwards.
    private static func withServerConnection(_ url: String, _ body: (PGConnection) async throws -> Void) async throws {
        let connection = try await PGConnection.connect(
            PGConfiguration(
                connectionString: ConnectionString(url),
                // Generous: at the start of a parallel test run every test creates its database at once.
                connectTimeoutSeconds: 60,
                applicationName: "durable-testing",
                usePreparedStatements: false
            ))
        do {
            try await body(connection)
        } catch {
            await connection.close()
            throw error
        }
        await connection.close()
    }

    private func withServerConnection(_ url: String, _ body: (PGConnection) async throws -> Void) async throws {
        try await Self.withServerConnection(url, body)
    }
}
