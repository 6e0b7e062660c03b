import Foundation
import Synchronization

/// The one way the tests get a database.
///
/// With `DATABASE_URL` set, that server is used as is and nothing is started. Otherwise a single
/// ``EmbeddedPostgres`` is started per process on first use, without waiting for the disk on commit unless
/// ``syncsToDisk`` (see ``EmbeddedPostgres/start(syncToDisk:log:)``), and left running; its watchdog removes
/// it after the process exits (Swift Testing has no global teardown to call ``EmbeddedPostgres/stop()`` from).
public enum SharedDatabase {
    /// The shared start-up, stored as a task so concurrent first callers all await the same one. A failure
    /// is kept too: every caller then sees the same actionable error instead of each retrying initdb.
    private static let embedded = Mutex<Task<EmbeddedPostgres, any Error>?>(nil)

    /// The server URL: `DATABASE_URL` untouched when set (and nothing is ever started), else the URL of this
    /// process's embedded cluster, started on the first call. Safe to call from many tasks at once.
    ///
    /// - Parameter log: receives the start-up lines of the embedded cluster when this call is the one that starts
    ///   it (see ``EmbeddedPostgres/start(syncToDisk:log:)``). nil: the line saying where it accepts connections
    ///   goes to stderr, for whoever reads a test run's output.
    public static func url(log: (@Sendable (String) -> Void)? = nil) async throws -> String {
        if let external = DatabaseEnvironment.current.externalURL { return external }
        return try await embeddedServer(log: log).url
    }

    /// Creates a database with a fresh name (`prefix` reduced to `[a-z0-9_]`, then `_` and 12 random
    /// characters) on the server of ``url()`` and returns its URL: the server URL with only the database
    /// replaced, so user, password, host and query parameters of `DATABASE_URL` are kept.
    public static func freshDatabase(prefix: String) async throws -> String {
        let name = DatabaseName.unique(prefix: prefix)
        let create = "CREATE DATABASE \(DatabaseName.quotedIdentifier(name));"
        if let external = DatabaseEnvironment.current.externalURL {
            guard let psqlPath = PostgresBinaries.locatePsql() else {
                throw EmbeddedPostgresError.clientNotInstalled()
            }
            let psql = Psql(executable: psqlPath, user: .current, directory: "/")
            _ = try await psql.run(create, url: external)
            return try DatabaseURL.replacingDatabase(in: external, with: name)
        }
        let server = try await embeddedServer()
        _ = try await server.runSQL(create)
        return server.url(database: name)
    }

    /// Whether the embedded cluster waits for the disk on commit: only when `DURABLE_TEST_FSYNC` is `on`, `true`
    /// or `1` (to run the suite as production commits would, slower), since no test survives a crash of the
    /// machine itself.
    public static var syncsToDisk: Bool {
        let value = ProcessInfo.processInfo.environment["DURABLE_TEST_FSYNC"]?.lowercased()
        return value == "on" || value == "true" || value == "1"
    }

    /// This process's embedded cluster, started on first use; `log` as in ``url(log:)``.
    static func embeddedServer(log: (@Sendable (String) -> Void)? = nil) async throws -> EmbeddedPostgres {
        let task = embedded.withLock { current in
            if let current { return current }
            let started = Task {
                // By default one line on stderr tells whoever reads the test output which server was used.
                try await EmbeddedPostgres.start(
                    syncToDisk: syncsToDisk,
                    log: log ?? { line in
                        if line.contains("accepting connections") {
                            FileHandle.standardError.write(Data((line + "\n").utf8))
                        }
                    })
            }
            current = started
            return started
        }
        return try await task.value
    }
}
