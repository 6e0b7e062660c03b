import EmbeddedPostgres
import LibPQ

/// A fresh database for one test.
enum SharedDatabaseURL {
    static func fresh(_ prefix: String) async throws -> String {
        try await SharedDatabase.freshDatabase(prefix: prefix)
    }
}

extension PGConfiguration {
    /// A connection for a test's own queries: a generous connect timeout, since at the start of a run every suite
    /// creates databases and connects at once, and a loaded server then takes seconds to start a backend (the
    /// library's 10 s default once failed a dozen crash tests' set-up at one moment).
    static func forTests(_ url: String, usePreparedStatements: Bool = true) -> PGConfiguration {
        PGConfiguration(connectionString: ConnectionString(url), connectTimeoutSeconds: 60, usePreparedStatements: usePreparedStatements)
    }
}
