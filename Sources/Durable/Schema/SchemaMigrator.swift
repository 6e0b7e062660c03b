import LibPQ
import Logging

/// Creates the DBOS system schema on an empty database, or checks that an existing one is usable.
///
/// The migrations are the SQL files in `Migrations/`, shipped inside the library (``embedded``). Migration 0001
/// builds the whole DBOS Transact 3.4.0 schema, after which `dbos_migrations` holds 125, exactly as when DBOS's
/// own `dbos migrate` built it; DBOS's tools and ours therefore accept each other's databases. The work runs in
/// one transaction under the advisory lock DBOS uses for its migrations, so processes launching together
/// (ours or DBOS's) wait for one another instead of colliding.
struct SchemaMigrator: Sendable {
    /// One SQL file from `Migrations/`.
    struct Migration: Sendable {
        /// The number in the file name.
        var number: Int
        /// The file name, for messages.
        var fileName: String
        /// The SQL, with `{{SCHEMA}}` where the quoted schema name goes.
        var sql: String

        func sql(forSchema schema: String) -> String {
            sql.replacingOccurrences(of: "{{SCHEMA}}", with: SQLIdentifier.quote(schema))
        }
    }

    /// The `dbos_migrations` version a database has once our migrations ran: DBOS 3.4.0's.
    static let dbosSchemaVersion: Int64 = 125
    /// The advisory lock key DBOS takes around its migrations.
    static let advisoryLockKey: Int64 = 1_234_567_890

    let pool: ConnectionPool
    let schema: String
    let logger: Logger

    /// Brings the schema up to date, or with `autoMigrate` off only checks it.
    func run(autoMigrate: Bool) async throws {
        do {
            let found = try await pool.withConnection { try await currentVersion(on: $0) }
            if try accept(found) { return }
            guard autoMigrate else {
                throw DurableError(.migrationFailed, "schema \"\(schema)\" has no DBOS system tables and DurableConfiguration.autoMigrate is off; apply Migrations/*.sql (or run `dbos migrate`) first, or turn autoMigrate on")
            }
            try await pool.withTransaction { connection in
                // Waiting for another process's migration is normal; waiting forever is not.
                try await connection.execute("SET LOCAL lock_timeout = '60s'")
                try await connection.query("SELECT pg_advisory_xact_lock($1)", [Self.advisoryLockKey])
                // Someone may have finished while we waited for the lock.
                if try accept(try await currentVersion(on: connection)) { return }
                for migration in Self.embedded {
                    logger.info("applying schema migration", metadata: ["file": "\(migration.fileName)", "schema": "\(schema)"])
                    try await connection.execute(migration.sql(forSchema: schema))
                }
                try await connection.query(
                    "INSERT INTO \(SQLIdentifier.quote(schema)).dbos_migrations (version) VALUES ($1)",
                    [Self.dbosSchemaVersion]
                )
            }
            logger.info("created the DBOS system schema", metadata: ["schema": "\(schema)", "version": "\(Self.dbosSchemaVersion)"])
        } catch let error as PostgresError {
            throw DurableError(error, context: "could not prepare the system schema \"\(schema)\"")
        }
    }

    /// True when the schema can be used as it is; throws when it is at an older, unsupported version.
    private func accept(_ version: Int64?) throws -> Bool {
        guard let version else { return false }
        if version == Self.dbosSchemaVersion { return true }
        if version > Self.dbosSchemaVersion {
            logger.info("the system schema is newer than this library's; using it as it is", metadata: [
                "schema": "\(schema)", "version": "\(version)", "ours": "\(Self.dbosSchemaVersion)",
            ])
            return true
        }
        throw DurableError(.migrationFailed, "schema \"\(schema)\" is at DBOS schema version \(version), older than \(Self.dbosSchemaVersion); upgrade it with `dbos migrate` from dbos 3.4.0 or newer, then start again")
    }

    /// The version in `dbos_migrations`, or nil when the table (or the schema) does not exist or is empty.
    private func currentVersion(on connection: PostgresConnection) async throws -> Int64? {
        let table = SQLIdentifier.quote(schema) + ".dbos_migrations"
        let exists = try await connection.query("SELECT to_regclass($1) IS NOT NULL", [table])
        guard exists.first?.bool(0) == true else { return nil }
        return try await connection.query("SELECT max(version) FROM \(table)").first?.int64(0)
    }
}
