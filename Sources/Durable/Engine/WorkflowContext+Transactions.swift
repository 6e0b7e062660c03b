import LibPQ

/// Where a transactional step runs its SQL.
public enum TransactionDatabase: Sendable {
    /// The database that holds the workflow tables: the step's checkpoint goes into `operation_outputs` inside
    /// the same transaction as the SQL.
    case system
    /// Another database, through a pool the application owns. A completion row goes into
    /// `<schema>.transaction_completion` of that database inside the same transaction as the SQL, and the
    /// checkpoint is then copied into the system database.
    case other(ConnectionPool)
}

extension WorkflowContext {
    /// Runs `body` in a database transaction, exactly once: the step's checkpoint is written in that same
    /// transaction, so a crash after the commit never runs the SQL again, and a crash before it rolls everything
    /// back.
    ///
    /// The body gets the transaction's connection; use bound parameters (`$1`) for every value. Throwing rolls
    /// the transaction back; the error is then recorded (in a separate write) like any step error.
    public func transaction<Output: Codable & Sendable>(
        _ name: String,
        on database: TransactionDatabase = .system,
        _ body: (PGConnection) async throws -> Output
    ) async throws -> Output {
        try await operation(name) { stepID in try await runTransaction(name, on: database, stepID: stepID, body) }
    }

    /// A transaction step's first run, on the system database or another one.
    private func runTransaction<Output: Codable & Sendable>(
        _ name: String, on database: TransactionDatabase, stepID: Int, _ body: (PGConnection) async throws -> Output
    ) async throws -> Output {
        let startedAt = Self.nowMilliseconds()
        let limit = engine.configuration.maxPayloadBytes
        switch database {
        case .system:
            return try await transactionOnSystemDatabase(name, stepID: stepID, startedAt: startedAt, body)
        case .other(let pool):
            let system = engine.database
            let run: OtherDatabaseAttempt<Output>
            do {
                // Before each attempt, the completion row: a crash after the other database committed but before the
                // system checkpoint, or a connection lost during COMMIT after the commit went through, left it there.
                // Otherwise a lost connection rolled the transaction back, and it simply runs again.
                run = try await engine.database.retry.run("run transaction step \(stepID)", workflowID: workflowID) {
                    if let committed = try await pool.withConnection({
                        try await system.readCompletion(workflowID: workflowID, stepID: stepID, on: $0)
                    }) {
                        return .committedBefore(committed)
                    }
                    do {
                        return try await pool.withTransaction { connection in
                            let output = try await StepScope.$isInsideStep.withValue(true) {
                                try await body(connection)
                            }
                            let encoded = try PortableJSON.encode(
                                output, limit: limit, what: "the result of transaction step '\(name)'")
                            // Already there: an earlier attempt's COMMIT, which the check above could not see yet,
                            // went through. Throwing rolls this second run of the SQL back.
                            guard
                                try await system.recordCompletion(
                                    workflowID: workflowID, stepID: stepID, output: encoded, on: connection)
                            else {
                                throw CompletionRecordedMeanwhile()
                            }
                            return .ran(output, encoded)
                        }
                    } catch is CompletionRecordedMeanwhile {
                        guard
                            let committed = try await pool.withConnection({
                                try await system.readCompletion(workflowID: workflowID, stepID: stepID, on: $0)
                            })
                        else {
                            throw RunInterrupted(reason: "the completion of transaction step \(stepID) vanished")
                        }
                        return .committedBefore(committed)
                    }
                }
            } catch {
                if Task.isCancelled { throw error }
                try await recordFailure(name, stepID: stepID, startedAt: startedAt, error, as: Output.self)
            }
            switch run {
            case .committedBefore(let committed):
                try await recordOutcome(name, stepID: stepID, startedAt: startedAt, output: committed, as: Output.self)
                return try PortableJSON.decode(
                    Output.self, from: committed, what: "the recorded result of transaction step \(stepID) '\(name)'")
            case .ran(let output, let encoded):
                let adopted = try await recordOutcome(
                    name, stepID: stepID, startedAt: startedAt, output: encoded, as: Output.self)
                return adopted ?? output
            }
        }
    }

    private func transactionOnSystemDatabase<Output: Codable & Sendable>(
        _ name: String, stepID: Int, startedAt: Int64, _ body: (PGConnection) async throws -> Output
    ) async throws -> Output {
        let limit = engine.configuration.maxPayloadBytes
        let database = engine.database
        var attempt = 0
        do {
            // A lost connection rolls the transaction back, so it is simply run again — unless the connection broke
            // during COMMIT after the commit went through: then the checkpoint, committed with the SQL, is there.
            return try await database.retry.run("run transaction step \(stepID)", workflowID: workflowID) {
                attempt += 1
                if attempt > 1, let committed = try await database.recordedStep(workflowID: workflowID, stepID: stepID)
                {
                    return try replay(committed, as: Output.self, stepID: stepID, name: name)
                }
                return try await database.pool.withTransaction { connection in
                    let output = try await StepScope.$isInsideStep.withValue(true) { try await body(connection) }
                    let encoded = try PortableJSON.encode(
                        output, limit: limit, what: "the result of transaction step '\(name)'")
                    let recorded = try await database.recordStep(
                        checkpoint(stepID, name, output: encoded, startedAt: startedAt), inTransactionOn: connection)
                    // Not ours any more: throwing rolls the user's SQL back with it.
                    try ensureStillOwner(status: recorded.status, stillOwner: recorded.owned)
                    guard recorded.written else {
                        throw RunInterrupted(reason: "another run already recorded step \(stepID)")
                    }
                    return output
                }
            }
        } catch let error as DurableError where error.code == .workflowCancelled {
            throw error
        } catch let error as RunInterrupted {
            throw error
        } catch {
            if Task.isCancelled { throw error }
            try await recordFailure(name, stepID: stepID, startedAt: startedAt, error, as: Output.self)
        }
    }

    @discardableResult
    private func recordOutcome<Output: Decodable>(
        _ name: String, stepID: Int, startedAt: Int64, output: String, as type: Output.Type
    ) async throws -> Output? {
        try await record(checkpoint(stepID, name, output: output, startedAt: startedAt), as: Output.self)
    }

    /// Records a rolled-back transaction's error as the step's outcome and throws it as ``DurableError/Code/stepFailed``.
    private func recordFailure<Output: Decodable>(
        _ name: String, stepID: Int, startedAt: Int64, _ error: any Error, as type: Output.Type
    ) async throws -> Never {
        let failure = PortableError(describing: error)
        let encoded = try PortableJSON.encode(
            failure, limit: engine.configuration.maxPayloadBytes, what: "the error of step '\(name)'")
        _ = try await record(
            checkpoint(stepID, name, output: nil, error: encoded, startedAt: startedAt), as: Output.self)
        throw DurableError(
            .stepFailed, "step \(stepID) '\(name)' failed: \(failure.name): \(failure.message)", workflowID: workflowID,
            errorName: failure.name)
    }
}

/// Thrown inside a transaction step's transaction on another database when its completion row is already there.
private struct CompletionRecordedMeanwhile: Error {}

/// What an attempt at a transaction step on another database found: the step had already committed there (its
/// recorded result), or it ran now (its output and that output encoded).
private enum OtherDatabaseAttempt<Output: Sendable>: Sendable {
    case committedBefore(String)
    case ran(Output, String)
}
