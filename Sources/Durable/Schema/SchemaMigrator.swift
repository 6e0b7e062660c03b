import LibPQ
import Logging

/// Creates the DBOS system schema on an empty database, or checks that an existing one is usable.
///
/// The migrations are the SQL files in `Migrations/`, shipped inside the library (``embedded``). Migration 0001
/// builds the whole DBOS Transact 3.4.0 schema, after which `dbos_migrations` holds 125, exactly as when DBOS's
/// own `dbos migrate` built it; DBOS's tools and ours therefore accept each other's databases. The work runs in
/// one transaction under the advisory lock DBOS uses for its migrations, so processes launching together
/// (ours or DBOS's) wait for one another instead of colliding. A schema that is not complete is only judged
/// under that lock: DBOS commits its migrations one at a time, so what is seen without it may be half-way.
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
    /// How long launch waits for another process to finish migrating before it gives up.
    static let lockWaitLimit: Duration = .seconds(60)

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
            // The common case, without the lock: a schema that is complete is used as it is.
            let found = try await pool.withConnection { try await currentState(on: $0) }
            if let version = found.dbosVersion, version >= Self.dbosSchemaVersion, missing(found.applied).isEmpty {
                _ = try accept(version)
                return true
            }
            // Anything else is judged only under the lock: another process may be migrating right now (ours in
            // one transaction; DBOS's one committed migration at a time, so a version below ours may be
            // half-way there), and its result is final only once it lets go.
            let ownTablesReady = try await underMigrationLock { connection -> Bool in
                // Waiting for a table lock (someone else's long transaction on a system table) must end too.
                try await connection.execute("SET LOCAL lock_timeout = '60s'")
                let current = try await currentState(on: connection)
                let dbosReady = try accept(current.dbosVersion)
                let pending = missing(current.applied)
                if dbosReady, pending.isEmpty { return true }
                guard autoMigrate else {
                    guard dbosReady else {
                        throw DurableError(
                            .migrationFailed,
                            "schema \"\(schema)\" has no DBOS system tables and DurableConfiguration.autoMigrate is off; apply Migrations/*.sql (or run `dbos migrate`) first, or turn autoMigrate on"
                        )
                    }
                    logger.warning(
                        "Durable's own tables are missing and autoMigrate is off; dead-executor takeover is disabled until Migrations/0002 and later are applied",
                        metadata: ["schema": "\(schema)"])
                    return false
                }
                let quoted = SQLIdentifier.quote(schema)
                // Only a missing schema is created: CREATE SCHEMA needs a right on the database that a role owning
                // its schema (least privilege) need not have, even with IF NOT EXISTS.
                let schemaExists =
                    try await connection.query(
                        "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", [schema]
                    ).first?.bool(0) ?? false
                if !schemaExists {
                    try await connection.execute("CREATE SCHEMA \(quoted)")
                }
                if !dbosReady, let base = Self.embedded.first(where: { $0.number == 1 }) {
                    logger.info(
                        "applying schema migration", metadata: ["file": "\(base.fileName)", "schema": "\(schema)"])
                    try await connection.execute(base.sql(forSchema: schema))
                    try await connection.query(
                        "INSERT INTO \(quoted).dbos_migrations (version) VALUES ($1)", [Self.dbosSchemaVersion])
                }
                for migration in pending {
                    logger.info(
                        "applying schema migration", metadata: ["file": "\(migration.fileName)", "schema": "\(schema)"])
                    try await connection.execute(migration.sql(forSchema: schema))
                    try await connection.query(
                        "INSERT INTO \(quoted).durable_migrations (version) VALUES ($1)", [migration.number])
                }
                return true
            }
            if ownTablesReady {
                logger.info(
                    "the system schema is ready",
                    metadata: ["schema": "\(schema)", "version": "\(Self.dbosSchemaVersion)"])
            }
            return ownTablesReady
        } catch let error as PGError where !error.isConnectionProblem {
            // A connection problem stays a PGError, so the launch's DatabaseRetry tries again (the database
            // may still be starting) until DurableConfiguration.reconnectTimeout; the work above is repeatable.
            throw DurableError(error, context: "could not prepare the system schema \"\(schema)\"")
        }
    }

    /// Runs `body` in a transaction holding the migration advisory lock, trying for the lock repeatedly rather
    /// than waiting for it inside a transaction, as DBOS does. DBOS builds some indexes CONCURRENTLY while it
    /// holds this lock, and CREATE INDEX CONCURRENTLY waits for every transaction that has a snapshot open: a
    /// transaction of ours blocked on the lock would be waited for in turn, a deadlock PostgreSQL cannot see
    /// (DBOS's two sides are different connections of one process) that only the lock timeout would end.
    private func underMigrationLock<Result: Sendable>(_ body: (PGConnection) async throws -> Result) async throws
        -> Result
    {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: Self.lockWaitLimit)
        var delay = Duration.milliseconds(10)
        var loggedWait = false
        while true {
            // Each attempt is a new transaction, so it sees everything the previous holder committed.
            let result: Result? = try await pool.withTransaction { connection in
                guard
                    try await connection.query("SELECT pg_try_advisory_xact_lock($1)", [Self.advisoryLockKey]).first?
                        .bool(0) == true
                else {
                    return nil
                }
                return try await body(connection)
            }
            if let result { return result }
            if clock.now >= deadline {
                throw DurableError(
                    .migrationFailed,
                    "another process has held the schema migration lock (PostgreSQL advisory lock \(Self.advisoryLockKey), the one DBOS uses) for over \(Self.lockWaitLimit); find it with `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objid = \(Self.advisoryLockKey)`"
                )
            }
            if !loggedWait {
                logger.info(
                    "waiting for another process to finish migrating the system schema",
                    metadata: ["schema": "\(schema)"])
                loggedWait = true
            }
            try await Task.sleep(for: delay)
            delay = min(delay * 2, .milliseconds(250))
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
            logger.info(
                "the system schema is newer than this library's; using it as it is",
                metadata: [
                    "schema": "\(schema)", "version": "\(version)", "ours": "\(Self.dbosSchemaVersion)",
                ])
            return true
        }
        throw DurableError(
            .migrationFailed,
            "schema \"\(schema)\" is at DBOS schema version \(version), older than \(Self.dbosSchemaVersion); upgrade it with `dbos migrate` from dbos 3.4.0 or newer, then start again"
        )
    }

    /// The version in `dbos_migrations` (nil when the table or the schema does not exist, or it is empty) and
    /// the numbers of our own migrations applied.
    private func currentState(on connection: PGConnection) async throws -> (dbosVersion: Int64?, applied: Set<Int>) {
        // Read from pg_class itself, not with to_regclass: to_regclass takes no lock and trusts this backend's
        // catalog cache, which inside a transaction that began before another process committed the schema can
        // still say "no such schema". A query on pg_class uses a fresh snapshot and makes the backend process
        // pending catalog invalidations, so the reads below see that schema too.
        let tables = try await connection.query(
            """
            SELECT bool_or(c.relname = 'dbos_migrations'), bool_or(c.relname = 'durable_migrations')
            FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = $1 AND c.relname IN ('dbos_migrations', 'durable_migrations') AND c.relkind IN ('r', 'p')
            """, [schema])
        var version: Int64?
        if tables.first?.bool(0) == true {
            version = try await connection.query("SELECT max(version) FROM \(identifier: schema).dbos_migrations")
                .first?.int64(0)
        }
        var applied: Set<Int> = []
        if tables.first?.bool(1) == true {
            applied = Set(
                try await connection.query("SELECT version FROM \(identifier: schema).durable_migrations").rows
                    .compactMap { $0.int(0) })
        }
        return (version, applied)
    }
}
