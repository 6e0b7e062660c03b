/// SQL for exactly-once database steps (see ``WorkflowContext/transaction(_:on:_:)``).
struct TransactionStatements: Sendable {
    /// Records the step in the system database inside the user's transaction (same database).
    let recordInSystemTransaction: String
    /// The completion table in another database, created on first use (the layout DBOS Go uses).
    let createCompletionTable: String
    let recordCompletion: String
    let readCompletion: String

    init(schema s: String) {
        // $1 id, $2 step, $3 name, $4 output, $5 error, $6 started, $7 completed, $8 owner token
        recordInSystemTransaction = """
            WITH owner AS (
                SELECT status, owner_xid IS NOT DISTINCT FROM $8 AS owned FROM \(s).workflow_status
                WHERE workflow_uuid = $1 FOR NO KEY UPDATE
            ), written AS (
                INSERT INTO \(s).operation_outputs
                    (workflow_uuid, function_id, function_name, output, error, serialization,
                     started_at_epoch_ms, completed_at_epoch_ms)
                SELECT $1, $2::int4, $3, $4, $5, 'portable_json', $6::bigint, $7::bigint FROM owner WHERE owner.owned
                ON CONFLICT (workflow_uuid, function_id) DO NOTHING
                RETURNING 1
            )
            SELECT owner.status, owner.owned, (SELECT count(*) FROM written) FROM owner
            """

        createCompletionTable = """
            CREATE SCHEMA IF NOT EXISTS \(s);
            CREATE TABLE IF NOT EXISTS \(s).transaction_completion (
                workflow_id text NOT NULL,
                step_id integer NOT NULL,
                output text,
                error text,
                serialization text,
                created_at bigint NOT NULL DEFAULT (EXTRACT(epoch FROM now()) * 1000.0)::bigint,
                PRIMARY KEY (workflow_id, step_id)
            )
            """

        // $1 workflow, $2 step, $3 output
        recordCompletion = """
            INSERT INTO \(s).transaction_completion (workflow_id, step_id, output, serialization)
            VALUES ($1, $2, $3, 'portable_json')
            ON CONFLICT (workflow_id, step_id) DO NOTHING
            RETURNING 1
            """

        // $1 workflow, $2 step
        readCompletion = """
            SELECT output FROM \(s).transaction_completion WHERE workflow_id = $1 AND step_id = $2
            """
    }
}
