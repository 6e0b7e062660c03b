/// The schema migrations shipped inside the library, for tools and tests that check them against
/// `Migrations/*.sql` or apply them by hand.
public enum ShippedMigrations {
    /// One migration: its file name and its SQL, with `{{SCHEMA}}` where the quoted schema name goes.
    public struct File: Sendable {
        /// The file name in `Migrations/`.
        public let fileName: String
        /// The SQL text, exactly as in the file without its final newline.
        public let sql: String
    }

    /// Every shipped migration, in order.
    public static var all: [File] {
        SchemaMigrator.embedded.map { File(fileName: $0.fileName, sql: $0.sql) }
    }
}
