import LibPQ
import Logging

/// Every statement the engine runs against the system tables, and nothing else: one file per domain
/// (`SystemDatabase+Workflows`, `+Steps`, `+Recovery`, `+Batches`, `+Messaging`, `+Queues`, `+Executors`,
/// `+Schedules`, `+Transactions`), each statement inside the one method that runs it.
///
/// Statements are ``LibPQ/PGQuery`` values: every value is a bound parameter; only the schema name, an identifier,
/// is quoted into the SQL text. Each method is one round trip; the comments say what it decides.
final class SystemDatabase: Sendable {
    let pool: ConnectionPool
    let schema: String
    let retry: DatabaseRetry

    init(pool: ConnectionPool, schema: String, retry: DatabaseRetry) {
        self.pool = pool
        self.schema = schema
        self.retry = retry
    }

    /// Runs one statement on a pooled connection, retrying through connection loss.
    func query(
        _ what: @autoclosure () -> String, workflowID: String? = nil, _ statement: String,
        _ parameters: [any PGParameter]
    ) async throws -> QueryResult {
        try await retry.run(what(), workflowID: workflowID) {
            try await pool.withConnection { connection in
                try await connection.query(statement, parameters)
            }
        }
    }

    /// Runs one interpolated statement (its SQL beside the method that calls this) on a pooled connection,
    /// retrying through connection loss.
    func query(_ what: @autoclosure () -> String, workflowID: String? = nil, _ query: PGQuery) async throws
        -> QueryResult
    {
        try await self.query(what(), workflowID: workflowID, query.sql, query.parameters)
    }
}
