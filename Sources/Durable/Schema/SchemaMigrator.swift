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
    ///
    /// - Returns: whether our own tables (migration 0002 and later: executor heartbeats) are present. With
    ///   `autoMigrate` off they may be missing; the runtime then works without dead-executor takeover.
    @discardableResult
    func run(autoMigrate: Bool) async throws -> Bool {
        do {
            let found = try await pool.withConnection { try await currentState(on: $0) }
            let dbosReady = try accept(found.dbosVersion)
            if dbosReady, missing(found.applied).isEmpty { return true }
            guard autoMigrate else {
                guard dbosReady else {
                    throw DurableError(.migrationFailed, "schema \"\(schema)\" has no DBOS system tables and DurableConfiguration.autoMigrate is off; apply Migrations/*.sql (or run `dbos migrate`) first, or turn autoMigrate on")
                }
                logger.warning("Durable's own tables are missing and autoMigrate is off; dead-executor takeover is disabled until Migrations/0002 and later are applied", metadata: ["schema": "\(schema)"])
                return false
            }
            try await pool.withTransaction { connection in
                // Waiting for another process's migration is normal; waiting forever is not.
                try await connection.execute("SET LOCAL lock_timeout = '60s'")
                try await connection.query("SELECT pg_advisory_xact_lock($1)", [Self.advisoryLockKey])
                // Someone may have finished while we waited for the lock.
                let current = try await currentState(on: connection)
                let quoted = SQLIdentifier.quote(schema)
                // Only a missing schema is created: CREATE SCHEMA needs a right on the database that a role owning
                // its schema (least privilege) need not have, even with IF NOT EXISTS.
                let schemaExists = try await connection.query("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", [schema]).first?.bool(0) ?? false
                if !schemaExists {
                    try await connection.execute("CREATE SCHEMA \(quoted)")
                }
                if try !accept(current.dbosVersion), let base = Self.embedded.first(where: { $0.number == 1 }) {
                    logger.info("applying schema migration", metadata: ["file": "\(base.fileName)", "schema": "\(schema)"])
                    try await connection.execute(base.sql(forSchema: schema))
                    try await connection.query("INSERT INTO \(quoted).dbos_migrations (version) VALUES ($1)", [Self.dbosSchemaVersion])
                }
                for migration in missing(current.applied) {
                    logger.info("applying schema migration", metadata: ["file": "\(migration.fileName)", "schema": "\(schema)"])
                    try await connection.execute(migration.sql(forSchema: schema))
                    try await connection.query("INSERT INTO \(quoted).durable_migrations (version) VALUES ($1)", [migration.number])
                }
            }
            logger.info("the system schema is ready", metadata: ["schema": "\(schema)", "version": "\(Self.dbosSchemaVersion)"])
            return true
        } catch let error as PostgresError {
            throw DurableError(error, context: "could not prepare the system schema \"\(schema)\"")
        }
    }

    /// Our own migrations (after 0001) not yet applied.
    private func missing(_ applied: Set<Int>) -> [Migration] {
        Self.embedded.filter { $0.number > 1 && !applied.contains($0.number) }
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

    /// The version in `dbos_migrations` (nil when the table or the schema does not exist, or it is empty) and
    /// the numbers of our own migrations applied.
    private func currentState(on connection: PostgresConnection) async throws -> (dbosVersion: Int64?, applied: Set<Int>) {
        let quoted = SQLIdentifier.quote(schema)
        let tables = try await connection.query(
            "SELECT to_regclass($1) IS NOT NULL, to_regclass($2) IS NOT NULL",
            [quoted + ".dbos_migrations", quoted + ".durable_migrations"]
        )
        var version: Int64?
        if tables.first?.bool(0) == true {
            version = try await connection.query("SELECT max(version) FROM \(quoted).dbos_migrations").first?.int64(0)
        }
        var applied: Set<Int> = []
        if tables.first?.bool(1) == true {
            applied = Set(try await connection.query("SELECT version FROM \(quoted).durable_migrations").rows.compactMap { $0.int(0) })
        }
        return (version, applied)
    }
}
