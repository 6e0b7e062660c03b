import LibPQ
import TestSupport
import Testing

/// Statement errors carry the server's SQLSTATE, message and detail, and leave the connection usable.
@Suite("Statement errors")
struct ErrorTests {
    static let database = SuiteDatabase(prefix: "libpq_errors")

    /// Runs `failing`, checks its error, then checks the connection still answers.
    private func expectStatementError(
        on connection: PGConnection,
        sqlState: String,
        messageContains fragment: String,
        sourceLocation: SourceLocation = #_sourceLocation,
        _ failing: () async throws -> Void
    ) async throws -> PGError? {
        let error = await expectPostgresError(sourceLocation: sourceLocation) { try await failing() }
        if let error {
            #expect(error.kind == .statementFailed, sourceLocation: sourceLocation)
            #expect(error.sqlState == sqlState, "\(error)", sourceLocation: sourceLocation)
            #expect(error.message.contains(fragment), "message: \(error.message)", sourceLocation: sourceLocation)
            #expect(!error.isConnectionProblem, sourceLocation: sourceLocation)
            #expect(String(describing: error).contains(sqlState), sourceLocation: sourceLocation)
        }
        // The connection is still good: not broken, not stuck in a transaction, and it answers.
        #expect(await !connection.isBroken, sourceLocation: sourceLocation)
        #expect(connection.isReusable, sourceLocation: sourceLocation)
        #expect(await !connection.inTransaction, sourceLocation: sourceLocation)
        #expect(try await connection.query("SELECT $1::int", [7]).first?.int(0) == 7, sourceLocation: sourceLocation)
        return error
    }

    @Test("SQLSTATEs: unique violation, syntax error, undefined table, division by zero", arguments: [true, false])
    func sqlStates(prepared: Bool) async throws {
        let connection = try await Self.database.connect(usePreparedStatements: prepared)
        defer { Task { await connection.close() } }
        let table = uniqueName("errors")
        try await connection.execute("CREATE TABLE \(table) (id int PRIMARY KEY, name text)")
        try await connection.query("INSERT INTO \(table) VALUES ($1, $2)", [1, "first"])

        let unique = try await expectStatementError(on: connection, sqlState: "23505", messageContains: "duplicate key")
        {
            try await connection.query("INSERT INTO \(table) VALUES ($1, $2)", [1, "again"])
        }
        #expect(
            unique?.detail?.contains("(id)=(1) already exists") == true, "detail: \(String(describing: unique?.detail))"
        )
        #expect(unique.map { String(describing: $0).contains("detail:") } == true)

        let syntax = try await expectStatementError(on: connection, sqlState: "42601", messageContains: "syntax error")
        {
            try await connection.query("SELEC 1")
        }
        #expect(syntax?.detail == nil)

        _ = try await expectStatementError(on: connection, sqlState: "42P01", messageContains: "no_such_table_xyz") {
            try await connection.query("SELECT * FROM no_such_table_xyz WHERE id = $1", [1])
        }
        _ = try await expectStatementError(on: connection, sqlState: "22012", messageContains: "division by zero") {
            try await connection.query("SELECT 1 / $1::int", [0])
        }
        // Through execute (simple protocol) as well.
        _ = try await expectStatementError(on: connection, sqlState: "22012", messageContains: "division by zero") {
            try await connection.execute("SELECT 1/0")
        }
        _ = try await expectStatementError(on: connection, sqlState: "42601", messageContains: "syntax error") {
            try await connection.execute("CREATE TABLEX nope ()")
        }
        // A bad parameter value is the server's complaint too.
        _ = try await expectStatementError(on: connection, sqlState: "22P02", messageContains: "invalid input syntax") {
            try await connection.query("SELECT $1::int", ["not a number"])
        }
        // The same failing statement again (its prepared plan was never stored) fails the same way.
        _ = try await expectStatementError(on: connection, sqlState: "42P01", messageContains: "no_such_table_xyz") {
            try await connection.query("SELECT * FROM no_such_table_xyz WHERE id = $1", [1])
        }
        #expect(try await connection.query("SELECT count(*) FROM \(table)", []).first?.int(0) == 1)
    }

    @Test("a hint is reported when the server gives one")
    func hint() async throws {
        let connection = try await Self.database.connect()
        defer { Task { await connection.close() } }
        let error = await expectPostgresError {
            try await connection.query("SELECT no_such_function_xyz($1::int)", [1])
        }
        #expect(error?.sqlState == "42883")
        #expect(error?.hint?.isEmpty == false)
        #expect(error.map { String(describing: $0).contains("hint:") } == true)
    }

    @Test("a statement error inside an explicit transaction leaves it aborted until ROLLBACK")
    func failedTransactionBlock() async throws {
        let connection = try await Self.database.connect()
        defer { Task { await connection.close() } }
        try await connection.execute("BEGIN")
        #expect(await connection.inTransaction)
        #expect(!connection.isReusable, "a connection inside a transaction must not go back to the pool")
        _ = await expectPostgresError { try await connection.query("SELECT 1 / $1::int", [0]) }
        let aborted = await expectPostgresError { try await connection.query("SELECT 1") }
        #expect(aborted?.sqlState == "25P02", "in failed transaction: \(String(describing: aborted))")
        #expect(await connection.inTransaction)
        #expect(!connection.isReusable)
        try await connection.execute("ROLLBACK")
        #expect(await !connection.inTransaction)
        #expect(connection.isReusable)
        #expect(try await connection.query("SELECT 1").first?.int(0) == 1)
    }

    struct Rollback: Error {}

    @Test("withTransaction rolls back on a thrown error and the connection is reused")
    func transactionRollsBackOnSwiftError() async throws {
        let pool = ConnectionPool(
            configuration: try await Self.database.configuration(), maxConnections: 1, logger: testLogger)
        let table = uniqueName("tx")
        try await pool.withConnection { try await $0.execute("CREATE TABLE \(table) (id int PRIMARY KEY)") }
        let pidBefore = try await pool.withConnection { try await $0.query("SELECT pg_backend_pid()").first?.int(0) }

        await #expect(throws: Rollback.self) {
            try await pool.withTransaction { connection in
                try await connection.query("INSERT INTO \(table) VALUES ($1)", [1])
                #expect(try await connection.query("SELECT count(*) FROM \(table)", []).first?.int(0) == 1)
                throw Rollback()
            }
        }
        let count = try await pool.withConnection { connection in
            #expect(await !connection.inTransaction)
            return try await connection.query("SELECT count(*) FROM \(table)", []).first?.int(0)
        }
        #expect(count == 0)
        let pidAfter = try await pool.withConnection { try await $0.query("SELECT pg_backend_pid()").first?.int(0) }
        #expect(pidAfter == pidBefore, "the rolled-back connection should have been reused, not replaced")
        #expect(pool.statistics.open == 1)
        await pool.close()
    }

    @Test("withTransaction rolls back after a statement error and the connection is reused")
    func transactionRollsBackOnStatementError() async throws {
        let pool = ConnectionPool(
            configuration: try await Self.database.configuration(), maxConnections: 1, logger: testLogger)
        let table = uniqueName("tx")
        try await pool.withConnection { connection in
            try await connection.execute("CREATE TABLE \(table) (id int PRIMARY KEY)")
            try await connection.query("INSERT INTO \(table) VALUES ($1)", [1])
        }
        let pidBefore = try await pool.withConnection { try await $0.query("SELECT pg_backend_pid()").first?.int(0) }

        let error = await expectPostgresError {
            try await pool.withTransaction { connection in
                try await connection.query("INSERT INTO \(table) VALUES ($1)", [2])
                try await connection.query("INSERT INTO \(table) VALUES ($1)", [1])  // duplicate
            }
        }
        #expect(error?.sqlState == "23505")

        // A body that swallows the error and carries on gets 25P02 for the rest, and still nothing commits.
        let swallowed = await expectPostgresError {
            try await pool.withTransaction { connection in
                try await connection.query("INSERT INTO \(table) VALUES ($1)", [3])
                _ = try? await connection.query("INSERT INTO \(table) VALUES ($1)", [1])
                try await connection.query("INSERT INTO \(table) VALUES ($1)", [4])
            }
        }
        #expect(swallowed?.sqlState == "25P02")

        let ids = try await pool.withConnection { connection in
            try await connection.query("SELECT id FROM \(table) ORDER BY id", []).rows.compactMap { $0.int(0) }
        }
        #expect(ids == [1])
        let pidAfter = try await pool.withConnection { try await $0.query("SELECT pg_backend_pid()").first?.int(0) }
        #expect(pidAfter == pidBefore)
        #expect(pool.statistics.open == 1)

        // And a successful transaction commits.
        try await pool.withTransaction { try await $0.query("INSERT INTO \(table) VALUES ($1), ($2)", [5, 6]) }
        let committed = try await pool.withConnection {
            try await $0.query("SELECT count(*) FROM \(table)", []).first?.int(0)
        }
        #expect(committed == 3)
        await pool.close()
    }

    @Test("a connection handed back inside an open transaction is discarded, not reused")
    func leakedTransactionIsDiscarded() async throws {
        let pool = ConnectionPool(
            configuration: try await Self.database.configuration(), maxConnections: 1, logger: testLogger)
        let table = uniqueName("leak")
        try await pool.withConnection { try await $0.execute("CREATE TABLE \(table) (id int)") }
        let pid = try await pool.withConnection { connection in
            try await connection.execute("BEGIN")
            try await connection.query("INSERT INTO \(table) VALUES ($1)", [1])
            return try await connection.query("SELECT pg_backend_pid()").first?.int(0)
        }
        #expect(pool.statistics.open == 0, "the connection left in a transaction should be closed")
        let (newPid, count) = try await pool.withConnection { connection in
            (
                try await connection.query("SELECT pg_backend_pid()").first?.int(0),
                try await connection.query("SELECT count(*) FROM \(table)", []).first?.int(0)
            )
        }
        #expect(newPid != pid)
        #expect(count == 0, "the abandoned transaction must not have committed")
        await pool.close()
    }
}
