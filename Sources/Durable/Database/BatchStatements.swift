/// The many-rows forms of the hot writes, for ``WriteBatcher`` (built once with the quoted schema name).
///
/// Each takes one array per column, numbers the rows with `WITH ORDINALITY` and answers one row per input row,
/// in input order, with what the single-row statement would have answered for it.
struct BatchStatements: Sendable {
    let recordSteps: String
    let finishWorkflows: String

    init(schema s: String) {
        let now = Statements.nowMilliseconds

        // $1 ids, $2 steps, $3 names, $4 outputs, $5 errors, $6 started, $7 completed, $8 owner tokens.
        // Answers: row number, the workflow's status, whether the token owns it, whether the row was written.
        recordSteps = """
            WITH input AS (
                SELECT * FROM unnest($1::text[], $2::int4[], $3::text[], $4::text[], $5::text[], $6::int8[], $7::int8[], $8::text[])
                    WITH ORDINALITY AS c(id, step, name, output, error, started, completed, token, n)
            ), written AS (
                INSERT INTO \(s).operation_outputs
                    (workflow_uuid, function_id, function_name, output, error, serialization,
                     started_at_epoch_ms, completed_at_epoch_ms)
                SELECT id, step, name, output, error, 'portable_json', started, completed FROM input
                ON CONFLICT (workflow_uuid, function_id) DO NOTHING
                RETURNING workflow_uuid, function_id
            )
            SELECT c.n, ws.status, ws.owner_xid IS NOT DISTINCT FROM c.token,
                   EXISTS (SELECT 1 FROM written w WHERE w.workflow_uuid = c.id AND w.function_id = c.step)
            FROM input c LEFT JOIN \(s).workflow_status ws ON ws.workflow_uuid = c.id
            ORDER BY c.n
            """

        // $1 ids, $2 statuses, $3 owner tokens, $4 outputs, $5 errors. Answers: row number, whether it was finished.
        finishWorkflows = """
            WITH input AS (
                SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
                    WITH ORDINALITY AS c(id, status, token, output, error, n)
            ), finished AS (
                UPDATE \(s).workflow_status ws
                SET status = c.status, updated_at = \(now), completed_at = \(now), owner_xid = NULL, deduplication_id = NULL
                FROM input c
                WHERE ws.workflow_uuid = c.id AND ws.status = 'PENDING' AND ws.owner_xid = c.token
                RETURNING ws.workflow_uuid
            ), stored_output AS (
                INSERT INTO \(s).workflow_output (workflow_uuid, output, error)
                SELECT c.id, c.output, c.error FROM input c WHERE c.id IN (SELECT workflow_uuid FROM finished)
                ON CONFLICT (workflow_uuid) DO UPDATE SET output = EXCLUDED.output, error = EXCLUDED.error
            )
            SELECT c.n, c.id IN (SELECT workflow_uuid FROM finished) FROM input c ORDER BY c.n
            """
    }
}
