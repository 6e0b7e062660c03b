import EmbeddedPostgres

/// A fresh database for one test.
enum SharedDatabaseURL {
    static func fresh(_ prefix: String) async throws -> String {
        try await SharedDatabase.freshDatabase(prefix: prefix)
    }
}
