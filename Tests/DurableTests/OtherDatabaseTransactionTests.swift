import Durable
import Foundation
import LibPQ
import Logging
import Synchronization
import Testing

/// The pool of the application's own database, another one than the system database.
final class OtherDatabase: Sendable {
    let url: String
    let pool: ConnectionPool

    init(url: String) {
        self.url = url
        var logger = Logger(label: "other-database-tests")
        logger.logLevel = .critical
        pool = ConnectionPool(configuration: PostgresConfiguration(connectionString: ConnectionString(url)), maxConnections: 2, logger: logger)
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
        guard let pool = OtherDatabase.named(input.database)?.pool else { throw WorkerError("no database \(input.database)") }
        let id = ctx.workflowID
        let inserted = try await ctx.transaction("insert", on: .other(pool)) { connection in
            RunCounts.note("other-attempt-\(id)")
            try await connection.query("INSERT INTO app_rows (workflow_id) VALUES ($1)", [id])
            if input.completionAppearsMeanwhile {
                try await pool.withConnection { other in
                    _ = try await other.query("INSERT INTO dbos.transaction_completion (workflow_id, step_id, output, serialization) VALUES ($1, 1, '7', 'portable_json')", [id])
                }
            }
            if input.loseConnectionOnce, RunCounts.count("other-attempt-\(id)") == 1 {
                // The server ends this session mid-transaction, as a restart or a failover would.
                _ = try await connection.query("SELECT pg_terminate_backend(pg_backend_pid())")
            }
            return try await connection.query("SELECT count(*) FROM app_rows WHERE workflow_id = $1", [id]).first?.int(0) ?? -1
        }
        return try await ctx.step("after") { inserted * 10 }
    }
}

@Suite("Transaction steps on another database")
struct OtherDatabaseTransactionTests {
    func setUp(_ prefix: String) async throws -> (MessagingHarness, OtherDatabase, String) {
        let h = try await MessagingHarness.make(prefix: prefix) { $0.register(OtherDatabaseWriter()) }
        let other = OtherDatabase(url: try await SharedDatabaseURL.fresh(prefix + "_app"))
        try await other.pool.withConnection { try await $0.query("CREATE TABLE app_rows (workflow_id text NOT NULL)") }
        let key = prefix + "-" + UUID().uuidString
        OtherDatabase.register(other, as: key)
        return (h, other, key)
    }

    func rows(_ other: OtherDatabase, _ id: String) async throws -> Int {
        try await other.pool.withConnection { try await $0.query("SELECT count(*) FROM app_rows WHERE workflow_id = $1", [id]).first?.int(0) ?? -1 }
    }

    @Test("the SQL and its completion commit together, once; the step's result is checkpointed in the system database")
    func commitsOnce() async throws {
        let (h, other, key) = try await setUp("other_db_once")
        let id = "other-once"
        #expect(try await h.runtime.start(OtherDatabaseWriter.self, OtherDatabaseInput(database: key, loseConnectionOnce: false), id: id).result() == 10)
        #expect(try await rows(other, id) == 1)
        #expect(RunCounts.count("other-attempt-\(id)") == 1)
        let recorded = try await h.query("SELECT function_name, output FROM dbos.operation_outputs WHERE workflow_uuid = $1 ORDER BY function_id", [id])
        #expect(recorded.rows.map { "\($0.string(0) ?? "") \($0.string(1) ?? "")" } == ["insert 1", "after 10"])
        await h.runtime.shutdown()
        await other.pool.close()
    }

    @Test("a connection lost inside the transaction is retried: the SQL commits once and the workflow succeeds")
    func connectionLostIsRetried() async throws {
        let (h, other, key) = try await setUp("other_db_lost")
        let id = "other-lost"
        // Before the fix the lost connection was recorded as the step's failure and the workflow ended ERROR.
        #expect(try await h.runtime.start(OtherDatabaseWriter.self, OtherDatabaseInput(database: key, loseConnectionOnce: true), id: id).result() == 10)
        #expect(try await rows(other, id) == 1)
        #expect(RunCounts.count("other-attempt-\(id)") == 2)
        await h.runtime.shutdown()
        await other.pool.close()
    }

    @Test("a completion committed meanwhile by an earlier attempt wins: this run's SQL is rolled back and its result adopted")
    func completionCommittedMeanwhile() async throws {
        let (h, other, key) = try await setUp("other_db_meanwhile")
        let id = "other-meanwhile"
        // Before the fix both committed: the SQL ran twice and the step returned this run's own count.
        #expect(try await h.runtime.start(OtherDatabaseWriter.self,
                                          OtherDatabaseInput(database: key, loseConnectionOnce: false, completionAppearsMeanwhile: true), id: id).result() == 70)
        #expect(try await rows(other, id) == 0)
        await h.runtime.shutdown()
        await other.pool.close()
    }
}
