import LibPQ

/// Exactly-once database steps (see ``WorkflowContext/transaction(_:on:_:)``): statements that run on the
/// connection of the user's own transaction, so they commit or roll back with the user's SQL. Each statement sits
/// in the method that runs it.
extension SystemDatabase {
    /// Records the step in the system database inside the user's transaction (same database), only while the run
    /// owns the workflow (whose row it locks against a concurrent claim).
    /// - Returns: the workflow's status, whether the run still owns it, and whether the checkpoint was written.
    func recordStep(_ c: StepCheckpoint, inTransactionOn connection: PGConnection) async throws -> (
        status: String?, owned: Bool, written: Bool
    ) {
        let result = try await connection.query(
            """
            WITH owner AS (
                SELECT status, owner_xid IS NOT DISTINCT FROM \(c.ownerToken) AS owned FROM \(identifier: schema).workflow_status
                WHERE workflow_uuid = \(c.workflowID) FOR NO KEY UPDATE
            ), written AS (
                INSERT INTO \(identifier: schema).operation_outputs
                    (workflow_uuid, function_id, function_name, output, error, serialization,
                     started_at_epoch_ms, completed_at_epoch_ms)
                SELECT \(c.workflowID), \(c.stepID)::int4, \(c.name), \(c.output), \(c.error), 'portable_json',
                       \(c.startedAtMilliseconds)::bigint, \(c.completedAtMilliseconds)::bigint
                FROM owner WHERE owner.owned
                ON CONFLICT (workflow_uuid, function_id) DO NOTHING
                RETURNING 1
            )
            SELECT owner.status, owner.owned, (SELECT count(*) FROM written) FROM owner
            """)
        let row = try result.decodeFirst(String?.self, Bool?.self, Int.self)
        return (row?.0 ?? nil, (row?.1 ?? nil) ?? false, (row?.2 ?? 0) > 0)
    }

    /// Records a step's completion in `<schema>.transaction_completion` of another database, inside the user's
    /// transaction there. Returns false when a completion is already there (an earlier attempt committed).
    func recordCompletion(workflowID: String, stepID: Int, output: String, on connection: PGConnection) async throws
        -> Bool
    {
        let result = try await connection.query(
            """
            INSERT INTO \(identifier: schema).transaction_completion (workflow_id, step_id, output, serialization)
            VALUES (\(workflowID), \(stepID), \(output), 'portable_json')
            ON CONFLICT (workflow_id, step_id) DO NOTHING
            RETURNING 1
            """)
        return !result.rows.isEmpty
    }

    /// The recorded output of a step's completion in another database, or nil. On first use of that database the
    /// table does not exist yet: it is created (the layout DBOS Go uses), and there is nothing to read. Two processes
    /// racing to create it may both try; the loser's duplicate-object error is harmless.
    func readCompletion(workflowID: String, stepID: Int, on connection: PGConnection) async throws -> String? {
        do {
            return try await connection.query(
                """
                SELECT output FROM \(identifier: schema).transaction_completion
                WHERE workflow_id = \(workflowID) AND step_id = \(stepID)
                """
            ).decodeFirst(String?.self) ?? nil
        } catch let error as PGError where error.sqlState == "42P01" || error.sqlState == "3F000" {
            let quoted = SQLIdentifier.quote(schema)
            do {
                try await connection.execute(
                    """
                    CREATE SCHEMA IF NOT EXISTS \(quoted);
                    CREATE TABLE IF NOT EXISTS \(quoted).transaction_completion (
                        workflow_id text NOT NULL,
                        step_id integer NOT NULL,
                        output text,
                        error text,
                        serialization text,
                        created_at bigint NOT NULL DEFAULT (EXTRACT(epoch FROM now()) * 1000.0)::bigint,
                        PRIMARY KEY (workflow_id, step_id)
                    )
                    """)
            } catch let error as PGError where ["42P07", "23505", "42P06"].contains(error.sqlState ?? "") {}
            return nil
        }
    }
}
