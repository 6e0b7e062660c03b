import LibPQ

extension SystemDatabase {
    /// Records several workflows' step checkpoints in one statement and commit; each result is what
    /// ``recordStep(_:)`` would have returned for that checkpoint.
    func recordSteps(_ checkpoints: [StepCheckpoint]) async -> [Result<StepWriteOutcome, any Error>] {
        await batched(checkpoints, single: recordStep) {
            let result = try await query("record \(checkpoints.count) step checkpoints", batches.recordSteps, [
                PGTextArray(checkpoints.map(\.workflowID)), PGTextArray(checkpoints.map { String($0.stepID) }),
                PGTextArray(checkpoints.map(\.name)), PGTextArray(checkpoints.map(\.output)),
                PGTextArray(checkpoints.map(\.error)), PGTextArray(checkpoints.map { String($0.startedAtMilliseconds) }),
                PGTextArray(checkpoints.map { String($0.completedAtMilliseconds) }), PGTextArray(checkpoints.map(\.ownerToken)),
            ])
            var outcomes: [Result<StepWriteOutcome, any Error>] = []
            for (index, row) in zip(checkpoints.indices, result.rows) where row.int(0) == index + 1 {
                var outcome = StepWriteOutcome(workflowStatus: row.string(1), stillOwner: row.bool(2) ?? false, existing: nil)
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
        await batched(outcomes, single: { try await finishWorkflow(id: $0.id, token: $0.token, status: $0.status, output: $0.output, error: $0.error) }) {
            let result = try await query("record \(outcomes.count) workflow outcomes", batches.finishWorkflows, [
                PGTextArray(outcomes.map(\.id)), PGTextArray(outcomes.map(\.status.rawValue)),
                PGTextArray(outcomes.map(\.token)), PGTextArray(outcomes.map(\.output)), PGTextArray(outcomes.map(\.error)),
            ])
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
