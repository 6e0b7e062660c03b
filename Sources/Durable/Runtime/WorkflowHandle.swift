/// A reference to one workflow run, by ID. Works in the process that started the workflow and in any other.
public struct WorkflowHandle<Output: Codable & Sendable>: Sendable {
    /// The workflow ID.
    public let id: String
    /// Finds the engine: through the runtime (launching it if needed), or directly inside a workflow.
    let engine: @Sendable () async throws -> WorkflowEngine

    init(id: String, runtime: DurableRuntime) {
        self.id = id
        self.engine = { try await runtime.launchedEngine() }
    }

    init(id: String, engine: WorkflowEngine) {
        self.id = id
        self.engine = { engine }
    }

    /// The workflow's current status row.
    /// - Throws: ``DurableError/Code/workflowNotFound`` if no workflow has this ID.
    public func status() async throws -> WorkflowStatus {
        let engine = try await engine()
        guard let status = try await engine.database.workflowRow(id: id, payloadLimit: 0).map(WorkflowStatus.init)
        else {
            throw DurableError(.workflowNotFound, "no workflow with this ID exists", workflowID: id)
        }
        return status
    }

    /// Waits for the workflow to finish and returns its result.
    ///
    /// A run active in this process is awaited directly; otherwise the database is polled, starting at
    /// `minimumPollingInterval` and backing off to `maximumPollingInterval`.
    ///
    /// - Throws: ``DurableError/Code/workflowFailed`` (with ``DurableError/errorName``) if the workflow threw;
    ///   ``DurableError/Code/nonDeterministicWorkflow``, ``DurableError/Code/corruptedCheckpoint``,
    ///   ``DurableError/Code/payloadTooLarge`` or ``DurableError/Code/stepOutsideWorkflowTask`` if a
    ///   `DurableError` with that code ended it (the library's reasons for ending a run; such an error that the
    ///   workflow let through from a child or threw itself reads the same);
    ///   ``DurableError/Code/workflowCancelled``, ``DurableError/Code/maxRecoveryAttemptsExceeded``, or
    ///   ``DurableError/Code/workflowNotFound`` if no workflow has this ID.
    public func result(
        minimumPollingInterval: Duration = .milliseconds(5),
        maximumPollingInterval: Duration = .seconds(1)
    ) async throws -> Output {
        let engine = try await engine()
        var interval = minimumPollingInterval
        while true {
            // Looked for on every round: a run parked at a long sleep is launched here again when it wakes.
            if let run = engine.activeRun(id) {
                switch await run.value {
                case .succeeded(let output): return try decode(output)
                case .failed(let failure): throw workflowFailure(failure)
                case .interrupted, .parked: break  // finished elsewhere, stopped or parked here: read the database
                }
            }
            guard
                let row = try await engine.database.workflowRow(
                    id: id, payloadLimit: engine.configuration.maxPayloadBytes)
            else {
                throw DurableError(.workflowNotFound, "no workflow with this ID exists", workflowID: id)
            }
            if row.outcomeOversized {
                throw DurableError(
                    .payloadTooLarge,
                    "the recorded outcome exceeds DurableConfiguration.maxPayloadBytes and was not loaded",
                    workflowID: id)
            }
            if let serialization = row.serialization, serialization != PortableJSON.formatName,
                row.output != nil || row.error != nil
            {
                // As recv, getEvent and readStream say it: a DBOS process recorded it in its own format.
                throw DurableError(
                    .corruptedCheckpoint,
                    "the workflow's \(row.output != nil ? "result" : "error") was recorded in the '\(serialization)' format, which this library cannot read",
                    workflowID: id)
            }
            switch WorkflowState(rawValue: row.status) {
            case .success?:
                guard let output = row.output else {
                    throw DurableError(
                        .corruptedCheckpoint, "the workflow succeeded but has no recorded output", workflowID: id)
                }
                return try decode(output)
            case .error?:
                guard let error = row.error else {
                    throw DurableError(
                        .corruptedCheckpoint, "the workflow failed but has no recorded error", workflowID: id)
                }
                let failure: PortableError
                do {
                    failure = try PortableJSON.decode(
                        PortableError.self, from: error, what: "the workflow's recorded error")
                } catch var problem as DurableError {
                    problem.workflowID = id
                    throw problem
                }
                throw workflowFailure(failure)
            case .cancelled?:
                throw DurableError(.workflowCancelled, "the workflow was cancelled", workflowID: id)
            case .maxRecoveryAttemptsExceeded?:
                throw DurableError(
                    .maxRecoveryAttemptsExceeded,
                    "the workflow was recovered too many times and was set aside (MAX_RECOVERY_ATTEMPTS_EXCEEDED)",
                    workflowID: id)
            case .pending?, .enqueued?, .delayed?, nil:
                try await Task.sleep(for: interval)
                interval = min(interval * 2, maximumPollingInterval)
            }
        }
    }

    private func decode(_ output: String) throws -> Output {
        do {
            return try PortableJSON.decode(Output.self, from: output, what: "the workflow's result")
        } catch var error as DurableError {
            error.workflowID = id
            throw error
        }
    }

    private func workflowFailure(_ failure: PortableError) -> DurableError {
        // A run that the library itself had to end (the code no longer matches the recorded steps, a checkpoint it
        // cannot read, a value over the limit, a durable call from a child task) fails with that code here too, as
        // the README promises; any other error, the user's own included, is workflowFailed.
        if failure.name == "DurableError", let raw = failure.code,
            Self.libraryEndings.contains(DurableError.Code(rawValue: raw))
        {
            return DurableError(
                DurableError.Code(rawValue: raw), "the workflow failed: \(failure.message)", workflowID: id,
                errorName: failure.name)
        }
        return DurableError(
            .workflowFailed, "the workflow failed: \(failure.name): \(failure.message)", workflowID: id,
            errorName: failure.name)
    }

    /// The codes with which the library ends a run it cannot go on with.
    private static var libraryEndings: Set<DurableError.Code> {
        [.nonDeterministicWorkflow, .corruptedCheckpoint, .payloadTooLarge, .stepOutsideWorkflowTask]
    }
}
