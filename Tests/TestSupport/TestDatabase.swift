import EmbeddedPostgres
import LibPQ
import Synchronization

/// A test's own database, and plain SQL against it (outside the code under test). Tests never share one, so they
/// can run in parallel: each asks for a ``fresh(_:)`` one (or its suite's ``SuiteDatabase``).
public struct TestDatabase: Sendable {
    /// Its URL, with the user's password when `DATABASE_URL` has one.
    public let url: String

    public init(url: String) {
        self.url = url
    }

    /// A new database on the shared server (`DATABASE_URL`, else this process's throwaway cluster), named after
    /// `prefix` and a random suffix.
    public static func fresh(_ prefix: String) async throws -> TestDatabase {
        TestDatabase(url: try await SharedDatabase.freshDatabase(prefix: prefix))
    }

    /// Runs one statement on a connection of its own, closed afterwards.
    @discardableResult
    public func query(_ sql: String, _ parameters: [any PGParameter] = []) async throws -> QueryResult {
        try await withConnection { try await $0.query(sql, parameters) }
    }

    /// Runs a script (several statements, no parameters) on a connection of its own.
    public func execute(_ script: String) async throws {
        try await withConnection { try await $0.execute(script) }
    }

    /// The one value of a one-row, one-column query, as text.
    public func value(_ sql: String, _ parameters: [any PGParameter] = []) async throws -> String? {
        try await query(sql, parameters).first?.string(0)
    }

    /// A connection of its own for the duration of `body`.
    public func withConnection<T: Sendable>(_ body: (PGConnection) async throws -> T) async throws -> T {
        let connection = try await PGConnection.connect(PGConfiguration.forTests(url))
        do {
            let result = try await body(connection)
            await connection.close()
            return result
        } catch {
            await connection.close()
            throw error
        }
    }
}

/// One database per suite, created on first use and shared by that suite's tests (which run in parallel, so
/// each test names its own tables with ``uniqueName(_:)``).
public final class SuiteDatabase: Sendable {
    private let prefix: String
    /// The creation, kept as a task so tests asking at the same moment all await the same one.
    private let creation = Mutex<Task<String, any Error>?>(nil)

    public init(prefix: String) {
        self.prefix = prefix
    }

    /// The database URL (with the user's password, when `DATABASE_URL` has one).
    public func url() async throws -> String {
        let task = creation.withLock { current in
            if let current { return current }
            let task = Task { [prefix] in try await TestDatabase.fresh(prefix).url }
            current = task
            return task
        }
        return try await task.value
    }

    /// A configuration for this database with a unique `application_name`, so tests can count their own
    /// backends in `pg_stat_activity`.
    public func configuration(
        applicationName: String = uniqueName("libpq_test"),
        usePreparedStatements: Bool = true
    ) async throws -> PGConfiguration {
        PGConfiguration.forTests(
            try await url(), applicationName: applicationName, usePreparedStatements: usePreparedStatements)
    }

    /// A single connection to this database.
    public func connect(usePreparedStatements: Bool = true) async throws -> PGConnection {
        try await PGConnection.connect(configuration(usePreparedStatements: usePreparedStatements))
    }
}

extension PGConfiguration {
    /// A connection for a test's own queries: a generous connect timeout, since at the start of a run every suite
    /// creates databases and connects at once, and a loaded server then takes seconds to start a backend (the
    /// library's 10 s default once failed a dozen crash tests' set-up at one moment).
    public static func forTests(
        _ url: String,
        applicationName: String? = nil,
        usePreparedStatements: Bool = true
    ) -> PGConfiguration {
        var configuration = PGConfiguration(
            connectionString: ConnectionString(url), connectTimeoutSeconds: 60,
            usePreparedStatements: usePreparedStatements)
        if let applicationName { configuration.applicationName = applicationName }
        return configuration
    }
}
