import LibPQ

/// The many-rows forms of the hot writes, for ``WriteBatcher`` (group commit). Each statement takes one array per
/// column, numbers the rows with `WITH ORDINALITY` and answers one row per input row, in input order, with what the
/// single-row statement would have answered for it. Each sits in the method that runs it.
extension SystemDatabase {
    /// Records several workflows' step checkpoints in one statement and commit; each result is what
    /// ``recordStep(_:)`` would have returned for that checkpoint.
    func recordSteps(_ checkpoints: [StepCheckpoint]) async -> [Result<StepWriteOutcome, any Error>] {
        await batched(checkpoints, single: recordStep) {
            let ids = PGTextArray(checkpoints.map(\.workflowID))
            let steps = PGTextArray(checkpoints.map { String($0.stepID) })
            let names = PGTextArray(checkpoints.map(\.name))
            let outputs = PGTextArray(checkpoints.map(\.output))
            let errors = PGTextArray(checkpoints.map(\.error))
            let started = PGTextArray(checkpoints.map { String($0.startedAtMilliseconds) })
            let completed = PGTextArray(checkpoints.map { String($0.completedAtMilliseconds) })
            let tokens = PGTextArray(checkpoints.map(\.ownerToken))
            // Answers: row number, the workflow's status, whether the token owns it, whether the row was written.
            let result = try await query(
                "record \(checkpoints.count) step checkpoints",
                """
                WITH input AS (
                    SELECT * FROM unnest(\(ids)::text[], \(steps)::int4[], \(names)::text[], \(outputs)::text[], \(errors)::text[],
                                         \(started)::int8[], \(completed)::int8[], \(tokens)::text[])
                        WITH ORDINALITY AS c(id, step, name, output, error, started, completed, token, n)
                ), written AS (
                    INSERT INTO \(identifier: schema).operation_outputs
                        (workflow_uuid, function_id, function_name, output, error, serialization,
                         started_at_epoch_ms, completed_at_epoch_ms)
                    SELECT id, step, name, output, error, 'portable_json', started, completed FROM input
                    ON CONFLICT (workflow_uuid, function_id) DO NOTHING
                    RETURNING workflow_uuid, function_id
                )
                SELECT c.n, ws.status, ws.owner_xid IS NOT DISTINCT FROM c.token,
                       EXISTS (SELECT 1 FROM written w WHERE w.workflow_uuid = c.id AND w.function_id = c.step)
                FROM input c LEFT JOIN \(identifier: schema).workflow_status ws ON ws.workflow_uuid = c.id
                ORDER BY c.n
                """)
            var outcomes: [Result<StepWriteOutcome, any Error>] = []
            for (index, row) in zip(checkpoints.indices, result.rows) where row.int(0) == index + 1 {
                var outcome = StepWriteOutcome(
                    workflowStatus: row.string(1), stillOwner: row.bool(2) ?? false, existing: nil)
                if row.bool(3) != true, outcome.workflowStatus != nil {
                    // Rare (a lost reply, or another run at this position): the same follow-up read as alone.
                    do {
                        outcome.existing = try await otherCheckpoint(at: checkpoints[index])
                    } catch {
                        outcomes.append(.failure(error))
                        continue
                    }
                }
                outcomes.append(.success(outcome))
            }
            return outcomes
        }
    }

    /// Records several workflows' outcomes in one statement and commit; each result is what
    /// ``finishWorkflow(id:token:status:output:error:)`` would have returned.
    func finishWorkflows(_ outcomes: [WorkflowOutcomeWrite]) async -> [Result<Bool, any Error>] {
        await batched(
            outcomes,
            single: {
                try await finishWorkflow(
                    id: $0.id, token: $0.token, status: $0.status, output: $0.output, error: $0.error)
            }
        ) {
            let ids = PGTextArray(outcomes.map(\.id))
            let statuses = PGTextArray(outcomes.map(\.status.rawValue))
            let tokens = PGTextArray(outcomes.map(\.token))
            let outputs = PGTextArray(outcomes.map(\.output))
            let errors = PGTextArray(outcomes.map(\.error))
            let now = Statements.nowMilliseconds
            // Answers: row number, whether it was finished.
            let result = try await query(
                "record \(outcomes.count) workflow outcomes",
                """
                WITH input AS (
                    SELECT * FROM unnest(\(ids)::text[], \(statuses)::text[], \(tokens)::text[], \(outputs)::text[], \(errors)::text[])
                        WITH ORDINALITY AS c(id, status, token, output, error, n)
                ), finished AS (
                    UPDATE \(identifier: schema).workflow_status ws
                    SET status = c.status, updated_at = \(fragment: now), completed_at = \(fragment: now), owner_xid = NULL,
                        deduplication_id = NULL
                    FROM input c
                    WHERE ws.workflow_uuid = c.id AND ws.status = 'PENDING' AND ws.owner_xid = c.token
                    RETURNING ws.workflow_uuid
                ), stored_output AS (
                    INSERT INTO \(identifier: schema).workflow_output (workflow_uuid, output, error)
                    SELECT c.id, c.output, c.error FROM input c WHERE c.id IN (SELECT workflow_uuid FROM finished)
                    ON CONFLICT (workflow_uuid) DO UPDATE SET output = EXCLUDED.output, error = EXCLUDED.error
                )
                SELECT c.n, c.id IN (SELECT workflow_uuid FROM finished) FROM input c ORDER BY c.n
                """)
            return zip(outcomes.indices, result.rows).compactMap { index, row in
                row.int(0) == index + 1 ? .success(row.bool(1) == true) : nil
            }
        }
    }

    /// Runs a batch statement; if the statement itself fails (one row breaks a constraint, a deadlock), each
    /// request is written on its own so that only the bad one fails. A lost database fails them all, as it would
    /// have failed each alone.
    private func batched<Request: Sendable, Response: Sendable>(
        _ requests: [Request],
        single: (Request) async throws -> Response,
        _ batch: () async throws -> [Result<Response, any Error>]
    ) async -> [Result<Response, any Error>] {
        do {
            let results = try await batch()
            if results.count == requests.count { return results }
        } catch let error as DurableError where error.sqlState == nil || error.sqlState!.hasPrefix("08") {
            return requests.map { _ in .failure(error) }
        } catch {
            // A statement error: fall through to one write each.
        }
        var results: [Result<Response, any Error>] = []
        for request in requests {
            do { results.append(.success(try await single(request))) } catch { results.append(.failure(error)) }
        }
        return results
    }
}

/// A workflow outcome about to be recorded.
struct WorkflowOutcomeWrite: Sendable {
    var id: String
    var token: String
    var status: WorkflowState
    var output: String?
    var error: String?
}
