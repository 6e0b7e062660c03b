import LibPQ

/// Every statement DurableTesting runs, in one place. Values are bound parameters; names of databases and
/// schemas are quoted identifiers (they cannot be parameters).
enum TestingStatements {
    /// Creates a test's database. No values: the name is an identifier.
    static func createDatabase(_ name: String) -> PGQuery {
        "CREATE DATABASE \(identifier: name)"
    }

    /// Drops a test's database. `force` (PostgreSQL 13 and later) first ends the sessions still connected to it,
    /// such as a runtime the test left running.
    static func dropDatabase(_ name: String, force: Bool) -> PGQuery {
        force
            ? "DROP DATABASE IF EXISTS \(identifier: name) WITH (FORCE)"
            : "DROP DATABASE IF EXISTS \(identifier: name)"
    }

    /// The server's version as a number (150004 for 15.4).
    static let serverVersion: PGQuery = "SELECT current_setting('server_version_num')::int"

    /// The recorded steps of one workflow, in order: number, name, whether it recorded an error.
    static func steps(of workflowID: String, schema: String) -> PGQuery {
        """
        SELECT function_id, function_name, error IS NOT NULL
        FROM \(identifier: schema).operation_outputs
        WHERE workflow_uuid = \(workflowID)
        ORDER BY function_id
        """
    }
}

extension PGConnection {
    /// Runs a statement that has no values (CREATE and DROP DATABASE cannot be prepared or run inside a
    /// transaction, so they go through the simple protocol).
    func executeWithoutValues(_ statement: PGQuery) throws {
        precondition(statement.parameters.isEmpty, "a statement with values must be run with bound parameters")
        try execute(statement.sql)
    }
}
