import Foundation
import Logging
import Synchronization

/// How a run of a workflow body ended in this process.
enum RunOutcome: Sendable {
    /// The body returned; its encoded output was recorded.
    case succeeded(output: String)
    /// The body threw; the encoded error was recorded.
    case failed(PortableError)
    /// The run stopped without recording an outcome (shutdown, or another run owns the workflow now).
    case interrupted
}

/// Runs workflows: starts them, executes their bodies, records their outcomes and keeps track of the runs
/// active in this process.
final class WorkflowEngine: Sendable {
    let configuration: DurableConfiguration
    let database: SystemDatabase
    let checkpoints: CheckpointWriter
    let registry: WorkflowRegistry
    let listener: NotificationListener
    let logger: Logger

    private struct State {
        var runs: [String: Task<RunOutcome, Never>] = [:]
        var accepting = true
    }

    private let state = Mutex(State())

    init(configuration: DurableConfiguration, database: SystemDatabase, registry: WorkflowRegistry, listener: NotificationListener, logger: Logger) {
        self.configuration = configuration
        self.database = database
        self.checkpoints = CheckpointWriter(database: database)
        self.registry = registry
        self.listener = listener
        self.logger = logger
    }

    // MARK: - Starting

    /// Starts a workflow or finds the run that already holds `id`.
    func start(name: String, input: String, id: String) async throws {
        try ensureAccepting()
        guard let registration = registry[name] else {
            throw DurableError(.workflowNotRegistered, "no workflow named '\(name)' is registered; call DurableRuntime.register(_:) before launch", workflowID: id)
        }
        if state.withLock({ $0.runs[id] != nil }) { return }
        let token = UUID().uuidString.lowercased()
        let outcome = try await database.startWorkflow(
            id: id, name: name, input: input, token: token,
            executorID: configuration.executorID, applicationVersion: configuration.applicationVersion
        )
        if outcome.created {
            launch(registration, id: id, input: input, token: token, recorded: [:])
            return
        }
        if let existing = outcome.name, existing != name {
            throw DurableError(
                .conflictingWorkflowID,
                "workflow ID is already used by a workflow named '\(existing)', not '\(name)'; choose another ID",
                workflowID: id
            )
        }
        logger.debug("workflow already exists; returning its handle", metadata: ["workflow": "\(id)", "status": "\(outcome.status)"])
    }

    /// The run of `id` active in this process, if any.
    func activeRun(_ id: String) -> Task<RunOutcome, Never>? {
        state.withLock { $0.runs[id] }
    }

    /// Number of runs active in this process.
    var activeRunCount: Int { state.withLock { $0.runs.count } }

    private func ensureAccepting() throws {
        guard state.withLock({ $0.accepting }) else {
            throw DurableError(.notRunning, "the durable runtime is shutting down and takes no new work")
        }
    }

    // MARK: - Running

    /// Runs a workflow body in its own task, and records its outcome.
    func launch(_ registration: WorkflowRegistration, id: String, input: String, token: String, recorded: [Int: RecordedStep]) {
        state.withLock { current in
            guard current.runs[id] == nil else { return }
            // The task removes itself when done; it cannot get there before this lock is released.
            current.runs[id] = Task { [self] in
                let outcome = await execute(registration, id: id, input: input, token: token, recorded: recorded)
                _ = self.state.withLock { $0.runs.removeValue(forKey: id) }
                return outcome
            }
        }
    }

    private func execute(_ registration: WorkflowRegistration, id: String, input: String, token: String, recorded: [Int: RecordedStep]) async -> RunOutcome {
        let context = WorkflowContext(workflowID: id, workflowName: registration.name, ownerToken: token, engine: self, recorded: recorded)
        let logger = self.logger.with(workflow: id, name: registration.name)
        logger.debug("workflow running", metadata: ["replaying": "\(!recorded.isEmpty)"])
        let result: Result<String, any Error>
        do {
            result = .success(try await registration.run(context, input, configuration.maxPayloadBytes))
        } catch {
            result = .failure(error)
        }

        let failure: PortableError
        switch result {
        case .success(let output):
            if let fatal = context.fatal {
                failure = PortableError(describing: fatal)
            } else {
                return await finish(id: id, token: token, as: .success, output: output, logger: logger) ? .succeeded(output: output) : await adoptRecordedOutcome(id)
            }
        case .failure(let error):
            if let interrupted = error as? RunInterrupted {
                logger.info("run stopped: \(interrupted.reason)")
                return await adoptRecordedOutcome(id)
            }
            if Task.isCancelled, context.fatal == nil {
                logger.info("run interrupted by shutdown; the workflow stays PENDING for recovery")
                return .interrupted
            }
            if let durable = error as? DurableError, durable.code == .workflowCancelled {
                logger.info("workflow cancelled")
                return .interrupted
            }
            failure = PortableError(describing: context.fatal ?? error)
        }
        let encoded: String
        do {
            encoded = try PortableJSON.encode(failure, limit: configuration.maxPayloadBytes, what: "the workflow's error")
        } catch {
            encoded = (try? PortableJSON.encode(PortableError(name: failure.name, message: "(error message too large to record)"), limit: configuration.maxPayloadBytes, what: "the workflow's error")) ?? "{}"
        }
        logger.info("workflow failed", metadata: ["error": "\(failure.name)"])
        return await finish(id: id, token: token, as: .error, error: encoded, logger: logger) ? .failed(failure) : await adoptRecordedOutcome(id)
    }

    /// Records the outcome; false when the workflow was no longer this run's to finish.
    private func finish(id: String, token: String, as status: WorkflowState, output: String? = nil, error: String? = nil, logger: Logger) async -> Bool {
        do {
            let recorded = try await database.finishWorkflow(id: id, token: token, status: status, output: output, error: error)
            if recorded { logger.debug("workflow finished", metadata: ["status": "\(status.rawValue)"]) }
            return recorded
        } catch {
            // The database stayed unreachable past the reconnect timeout, or we are shutting down: the workflow
            // stays PENDING and is recovered on the next start.
            logger.error("could not record the workflow outcome; it stays PENDING for recovery", metadata: ["error": "\(error)"])
            return false
        }
    }

    /// After a run could not record its own outcome, reports whatever outcome the database holds.
    private func adoptRecordedOutcome(_ id: String) async -> RunOutcome {
        guard let row = try? await database.workflowRow(id: id, payloadLimit: configuration.maxPayloadBytes) else { return .interrupted }
        switch WorkflowState(rawValue: row.status) {
        case .success?: return row.output.map { .succeeded(output: $0) } ?? .interrupted
        case .error?:
            let failure = row.error.flatMap { try? PortableJSON.decode(PortableError.self, from: $0, what: "the workflow's error") }
            return failure.map { .failed($0) } ?? .interrupted
        default: return .interrupted
        }
    }

    // MARK: - Shutdown

    /// Stops taking work and interrupts every active run; each stops at its next durable operation and stays
    /// `PENDING`. Returns once they have all stopped.
    func shutdown() async {
        let runs = state.withLock { state -> [Task<RunOutcome, Never>] in
            state.accepting = false
            return Array(state.runs.values)
        }
        for run in runs { run.cancel() }
        for run in runs { _ = await run.value }
        await listener.stop()
    }
}

extension Logger {
    func with(workflow id: String, name: String) -> Logger {
        var copy = self
        copy[metadataKey: "workflow"] = "\(id)"
        copy[metadataKey: "workflowName"] = "\(name)"
        return copy
    }
}
