import LibPQ
import Logging

/// Every statement the engine runs against the DBOS system tables, and nothing else.
///
/// Values are always bound parameters; only the schema name, an identifier, is quoted into the SQL text once,
/// when the statements are built. Each method is one round trip; the comments say what it decides.
final class SystemDatabase: Sendable {
    let pool: ConnectionPool
    let schema: String
    let retry: DatabaseRetry
    let batches: BatchStatements

    init(pool: ConnectionPool, schema: String, retry: DatabaseRetry) {
        self.pool = pool
        self.schema = schema
        self.retry = retry
        self.batches = BatchStatements(schema: SQLIdentifier.quote(schema))
    }

    /// Runs one statement on a pooled connection, retrying through connection loss.
    func query(_ what: @autoclosure () -> String, workflowID: String? = nil, _ statement: String, _ parameters: [any PGParameter]) async throws -> QueryResult {
        try await retry.run(what(), workflowID: workflowID) {
            try await pool.withConnection { connection in
                try await connection.query(statement, parameters)
            }
        }
    }

    /// Runs one interpolated statement (its SQL beside the method that calls this) on a pooled connection,
    /// retrying through connection loss.
    func query(_ what: @autoclosure () -> String, workflowID: String? = nil, _ query: PGQuery) async throws -> QueryResult {
        try await self.query(what(), workflowID: workflowID, query.sql, query.parameters)
    }
}
