import Durable
import Foundation
import LibPQ
import Logging
import Synchronization
import TestSupport
import Testing

/// The pool of the application's own database, another one than the system database.
final class OtherDatabase: Sendable {
    let url: String
    let pool: ConnectionPool

    init(url: String) {
        self.url = url
        var logger = Logger(label: "other-database-tests")
        logger.logLevel = .critical
        pool = ConnectionPool(configuration: PGConfiguration.forTests(url), maxConnections: 2, logger: logger)
    }

    /// The databases by test, looked up by the workflow through its input (a workflow is registered as a value).
    private static let byKey = Mutex<[String: OtherDatabase]>([:])
    static func register(_ database: OtherDatabase, as key: String) { byKey.withLock { $0[key] = database } }
    static func named(_ key: String) -> OtherDatabase? { byKey.withLock { $0[key] } }
}

struct OtherDatabaseInput: Codable, Sendable {
    var database: String
    /// Terminate the transaction's own connection on its first attempt, before COMMIT.
    var loseConnectionOnce: Bool
    /// While the body runs, another connection commits the step's completion row (result 7), as an earlier attempt
    /// whose COMMIT the pre-check could not see yet would have.
    var completionAppearsMeanwhile = false
}

/// One transaction step on the other database that inserts a row, then a plain step.
struct OtherDatabaseWriter: Workflow {
    static let name = "other-database-writer"
    func run(_ ctx: WorkflowContext, _ input: OtherDatabaseInput) async throws -> Int {
        guard let pool = OtherDatabase.named(input.database)?.pool else {
            throw WorkerError("no database \(input.database)")
        }
        let id = ctx.workflowID
        let inserted = try await ctx.transaction("insert", on: .other(pool)) { connection in
            RunCounts.note("other-attempt-\(id)")
            try await connection.query("INSERT INTO app_rows (workflow_id) VALUES ($1)", [id])
            if input.completionAppearsMeanwhile {
                try await pool.withConnection { other in
                    _ = try await other.query(
                        "INSERT INTO dbos.transaction_completion (workflow_id, step_id, output, serialization) VALUES ($1, 1, '7', 'portable_json')",
                        [id])
                }
            }
            if input.loseConnectionOnce, RunCounts.count("other-attempt-\(id)") == 1 {
                // The server ends this session mid-transaction, as a restart or a failover would.
                _ = try await connection.query("SELECT pg_terminate_backend(pg_backend_pid())")
            }
            return try await connection.query("SELECT count(*) FROM app_rows WHERE workflow_id = $1", [id]).first?.int(
                0) ?? -1
        }
        return try await ctx.step("after") { inserted * 10 }
    }
}

@Suite("Transaction steps on another database")
struct OtherDatabaseTransactionTests {
    /// What one run of `OtherDatabaseWriter` left: its result, its rows in the other database, how many times its
    /// transaction body ran, and the steps the system database recorded ("name output").
    struct Outcome {
        var result: Int
        var rows: Int
        var attempts: Int
        var recorded: [String]
    }

    /// Runs the writer once as workflow `id` in a fresh system database and a fresh other database.
    func run(_ prefix: String, id: String, loseConnectionOnce: Bool = false, completionAppearsMeanwhile: Bool = false)
        async throws -> Outcome
    {
        let h = try await MessagingHarness.make(prefix: prefix) { $0.register(OtherDatabaseWriter()) }
        let other = OtherDatabase(url: try await TestDatabase.fresh(prefix + "_app").url)
        try await other.pool.withConnection { try await $0.query("CREATE TABLE app_rows (workflow_id text NOT NULL)") }
        let key = prefix + "-" + UUID().uuidString
        OtherDatabase.register(other, as: key)
        let input = OtherDatabaseInput(
            database: key, loseConnectionOnce: loseConnectionOnce,
            completionAppearsMeanwhile: completionAppearsMeanwhile)
        let result = try await h.runtime.start(OtherDatabaseWriter.self, input, id: id).result()
        let rows = try await other.pool.withConnection {
            try await $0.query("SELECT count(*) FROM app_rows WHERE workflow_id = $1", [id]).first?.int(0) ?? -1
        }
        let recorded = try await h.query(
            "SELECT function_name, output FROM dbos.operation_outputs WHERE workflow_uuid = $1 ORDER BY function_id",
            [id])
        await h.runtime.shutdown()
        await other.pool.close()
        return Outcome(
            result: result, rows: rows, attempts: RunCounts.count("other-attempt-\(id)"),
            recorded: recorded.rows.map { "\($0.string(0) ?? "") \($0.string(1) ?? "")" })
    }

    @Test("the SQL and its completion commit together, once; the step's result is checkpointed in the system database")
    func commitsOnce() async throws {
        let outcome = try await run("other_db_once", id: "other-once")
        #expect(outcome.result == 10)
        #expect(outcome.rows == 1)
        #expect(outcome.attempts == 1)
        #expect(outcome.recorded == ["insert 1", "after 10"])
    }

    @Test("a connection lost inside the transaction is retried: the SQL commits once and the workflow succeeds")
    func connectionLostIsRetried() async throws {
        // Before the fix the lost connection was recorded as the step's failure and the workflow ended ERROR.
        let outcome = try await run("other_db_lost", id: "other-lost", loseConnectionOnce: true)
        #expect(outcome.result == 10)
        #expect(outcome.rows == 1)
        #expect(outcome.attempts == 2)
    }

    @Test(
        "a completion committed meanwhile by an earlier attempt wins: this run's SQL is rolled back and its result adopted"
    )
    func completionCommittedMeanwhile() async throws {
        // Before the fix both committed: the SQL ran twice and the step returned this run's own count.
        let outcome = try await run("other_db_meanwhile", id: "other-meanwhile", completionAppearsMeanwhile: true)
        #expect(outcome.result == 70)
        #expect(outcome.rows == 0)
    }
}
