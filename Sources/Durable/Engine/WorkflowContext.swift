import Foundation
import Synchronization

/// The handle a workflow body uses for durable operations. One per run; passed to ``Workflow/run(_:_:)``.
///
/// Steps are numbered in the order the workflow calls them, starting at 1 as DBOS Python does. That order is
/// what makes a replay line up with the recorded checkpoints, so durable operations must be called from the
/// workflow's own task, one after another. Calling one from a child task (`async let`, a task group) throws
/// ``DurableError/Code/stepOutsideWorkflowTask`` instead of silently racing for a step number.
public final class WorkflowContext: Sendable {
    /// The ID of the running workflow.
    public let workflowID: String
    /// The durable name of the running workflow.
    public let workflowName: String

    let ownerToken: String
    let engine: WorkflowEngine
    /// Checkpoints recorded by earlier runs, by step number; empty for a workflow's first run.
    let recorded: [Int: RecordedStep]
    private let lastStepID = Atomic<Int>(0)
    /// The task the workflow body runs in. Compared by identity only, never dereferenced.
    private let workflowTask: Int?
    /// An error that ends the workflow whatever the body does next (non-determinism, a corrupted checkpoint):
    /// a body that catches it must not be able to turn it into a success.
    private let fatalError = Mutex<DurableError?>(nil)
    /// Set when a long sleep parked this run (the wake-up time, epoch seconds): the run must end now, and the
    /// engine launches the workflow again at that time.
    private let parkedUntil = Mutex<Double?>(nil)
    /// Set when an operation found the deadline passed; the engine then records the cancellation itself.
    private let deadlinePassed = Atomic<Bool>(false)

    /// When this workflow times out (epoch milliseconds); children inherit it.
    let deadline: Int64?
    /// DurableTesting's simulated crash (see ``RunWatch``): the run stops once this many operations completed.
    /// nil for every run that no test watches.
    let crashAfterStep: Int?
    /// Set when the simulated crash stopped this run: it writes nothing more.
    private let crashed = Atomic<Bool>(false)

    init(
        workflowID: String, workflowName: String, ownerToken: String, engine: WorkflowEngine,
        recorded: [Int: RecordedStep], deadline: Int64? = nil,
        crashAfterStep: Int? = nil
    ) {
        self.deadline = deadline
        self.crashAfterStep = crashAfterStep
        self.workflowID = workflowID
        self.workflowName = workflowName
        self.ownerToken = ownerToken
        self.engine = engine
        self.recorded = recorded
        self.workflowTask = Self.currentTaskIdentity()
    }

    /// The number the next durable operation will take.
    var nextStepNumber: Int { lastStepID.load(ordering: .relaxed) + 1 }

    /// The number of the last durable operation this run began (0 before the first).
    var lastStepNumber: Int { lastStepID.load(ordering: .relaxed) }

    /// True while this run replays checkpoints recorded by an earlier run (before the last recorded step).
    public var isReplaying: Bool {
        let next = lastStepID.load(ordering: .relaxed) + 1
        return recorded[next] != nil
    }

    /// Runs `body` once, durably, and returns its result.
    ///
    /// On the first run the body executes and its result (or error) is checkpointed in `operation_outputs`
    /// before this returns. When the workflow is recovered after a crash, a step that already completed returns
    /// its recorded result without running the body again. A step that throws records the error; the call
    /// then throws ``DurableError/Code/stepFailed`` — on the first run and on every replay alike, so the workflow
    /// takes the same path both times.
    ///
    /// - Parameters:
    ///   - name: the step's durable name. On replay it must match the name recorded at this position.
    ///   - retry: how to retry the body when it throws; only the last error is recorded. No retries by default.
    ///   - isolation: the actor the body runs on; the caller's, by default. Leave it out.
    ///   - body: the side effect. It may run more than once only if the process dies after it finishes and
    ///     before its checkpoint commits, so make it idempotent where you can (for example with an idempotency key).
    public func step<Output: Codable & Sendable>(
        _ name: String,
        retry: RetryPolicy = .none,
        isolation: isolated (any Actor)? = #isolation,
        _ body: () async throws -> Output
    ) async throws -> Output {
        if StepScope.isInsideStep { return try await body() }
        return try await operation(name, isolation: isolation) { stepID in
            try await perform(name, stepID: stepID, retry: retry, isolation: isolation, body)
        }
    }

    /// A step's first run: the body (retried as `retry` says), then its checkpoint.
    private func perform<Output: Codable & Sendable>(
        _ name: String, stepID: Int, retry: RetryPolicy, isolation: isolated (any Actor)?,
        _ body: () async throws -> Output
    ) async throws -> Output {
        let startedAt = Self.nowMilliseconds()
        var attempt = 1
        let output: Output
        while true {
            do {
                output = try await StepScope.$isInsideStep.withValue(true, operation: body, isolation: isolation)
                break
            } catch {
                // Interrupted by shutdown or cancellation: record nothing, so the step runs again on recovery.
                if Task.isCancelled { throw error }
                if attempt < retry.maxAttempts, retry.shouldRetry(error) {
                    // Task.sleep throws when the workflow is cancelled, which ends the back-off at once.
                    try await Task.sleep(for: retry.delay(afterAttempt: attempt))
                    attempt += 1
                    continue
                }
                var failure = PortableError(describing: error)
                if attempt > 1 { failure.message += " (after \(attempt) attempts)" }
                let encoded = try PortableJSON.encode(
                    failure, limit: engine.configuration.maxPayloadBytes, what: "the error of step '\(name)'")
                let adopted = try await record(
                    checkpoint(stepID, name, output: nil, error: encoded, startedAt: startedAt), as: Output.self)
                if let adopted { return adopted }
                throw stepFailure(failure, stepID: stepID, name: name)
            }
        }
        let encoded = try PortableJSON.encode(
            output, limit: engine.configuration.maxPayloadBytes, what: "the result of step '\(name)'")
        let adopted = try await record(checkpoint(stepID, name, output: encoded, startedAt: startedAt), as: Output.self)
        return adopted ?? output
    }

    /// Runs a step that returns nothing. Its checkpoint records JSON `null`.
    public func step(
        _ name: String,
        retry: RetryPolicy = .none,
        isolation: isolated (any Actor)? = #isolation,
        _ body: () async throws -> Void
    ) async throws {
        let _: NoOutput = try await step(name, retry: retry, isolation: isolation) {
            try await body()
            return NoOutput()
        }
    }

    // MARK: - Internals

    /// The error that must end this workflow, if one occurred.
    var fatal: DurableError? { fatalError.withLock { $0 } }

    /// True when DurableTesting's simulated crash has stopped this run (see ``RunWatch``).
    var stoppedBySimulatedCrash: Bool { crashed.load(ordering: .relaxed) }

    /// For a body that ended on its own (it returned, threw, or parked; it was not interrupted): whether the
    /// simulated crash stops the run now, before its outcome is recorded, because it completed the operations
    /// the crash comes after.
    func crashesBeforeOutcome() -> Bool {
        if crashed.load(ordering: .relaxed) { return true }
        guard let crashAfterStep, lastStepNumber >= crashAfterStep else { return false }
        crashed.store(true, ordering: .relaxed)
        return true
    }

    /// True when an operation of this run was refused because the workflow's deadline had passed.
    var stoppedAtDeadline: Bool { deadlinePassed.load(ordering: .relaxed) }

    /// When this run was parked, the time its workflow wakes up.
    var parkedWakeTime: Double? { parkedUntil.withLock { $0 } }

    /// Ends this run at a long sleep; returns the error that unwinds the body. Every later durable operation of
    /// this run throws it too, so a body that catches it cannot go on.
    func park(until wakeTime: Double) -> RunParked {
        parkedUntil.withLock { $0 = wakeTime }
        return RunParked()
    }

    /// Checks the calling task and whether work may start, then takes the next step number.
    ///
    /// - Parameter nested: the position is taken inside another operation that has not completed yet (the
    ///   deadline of a `recv`), so a simulated crash does not stop the run there.
    func beginOperation(_ name: String, nested: Bool = false) throws -> Int {
        if let fatal { throw fatal }
        if parkedWakeTime != nil { throw RunParked() }
        if let crashAfterStep, crashed.load(ordering: .relaxed) || (!nested && lastStepNumber >= crashAfterStep) {
            crashed.store(true, ordering: .relaxed)
            throw SimulatedCrash(afterStep: crashAfterStep)
        }
        // Checked here, not only by the engine's timer: a run launched after its deadline (recovered late, or a
        // child started late) or a timer firing late on a busy machine must not start one more operation.
        if let deadline, deadline <= Self.nowMilliseconds() {
            deadlinePassed.store(true, ordering: .relaxed)
            throw DurableError(.workflowCancelled, "the workflow's timeout passed", workflowID: workflowID)
        }
        guard Self.currentTaskIdentity() == workflowTask else {
            throw DurableError(
                .stepOutsideWorkflowTask,
                "step '\(name)' was called from a child task (async let or a task group); call durable operations from the workflow's own task, one after another, so that replays number them the same way",
                workflowID: workflowID
            )
        }
        // Shutdown cancels running workflows: start no new work; the workflow stays PENDING for recovery.
        try Task.checkCancellation()
        return lastStepID.add(1, ordering: .relaxed).newValue
    }

    func replay<Output: Decodable>(_ checkpoint: RecordedStep, as type: Output.Type, stepID: Int, name: String) throws
        -> Output
    {
        guard checkpoint.name == name else {
            throw fail(
                DurableError(
                    .nonDeterministicWorkflow,
                    "step \(stepID) was recorded as '\(checkpoint.name)' but the code now calls '\(name)' at that position; the workflow code changed while this run was in flight. Run it with the code version that started it (DurableConfiguration.applicationVersion)",
                    workflowID: workflowID
                ))
        }
        if checkpoint.oversized {
            throw fail(
                DurableError(
                    .payloadTooLarge,
                    "the recorded result of step \(stepID) '\(name)' exceeds DurableConfiguration.maxPayloadBytes and was not loaded",
                    workflowID: workflowID))
        }
        if let serialization = checkpoint.serialization, serialization != PortableJSON.formatName {
            throw fail(
                DurableError(
                    .corruptedCheckpoint,
                    "step \(stepID) '\(name)' was recorded in the '\(serialization)' format, which this library cannot read",
                    workflowID: workflowID))
        }
        do {
            if let error = checkpoint.error {
                let failure = try PortableJSON.decode(
                    PortableError.self, from: error, what: "the recorded error of step \(stepID) '\(name)'")
                throw stepFailure(failure, stepID: stepID, name: name)
            }
            guard let output = checkpoint.output else {
                throw DurableError(
                    .corruptedCheckpoint, "step \(stepID) '\(name)' has neither a recorded result nor an error",
                    workflowID: workflowID)
            }
            // Messages are kept as raw JSON until the caller says which type they are.
            if let raw = RawJSON(text: output) as? Output { return raw }
            return try PortableJSON.decode(
                Output.self, from: output, what: "the recorded result of step \(stepID) '\(name)'")
        } catch let error as DurableError where error.code == .corruptedCheckpoint {
            var located = error
            located.workflowID = workflowID
            throw fail(located)
        }
    }

    /// Writes a checkpoint. Returns nil when it stands as written, or the value already recorded at this
    /// position by another run, which this run then adopts so that every run sees the same history.
    func record<Output: Decodable>(_ checkpoint: StepCheckpoint, as type: Output.Type) async throws -> Output? {
        let outcome = try await engine.checkpoints.write(checkpoint)
        try ensureStillOwner(status: outcome.workflowStatus, stillOwner: outcome.stillOwner)
        guard let existing = outcome.existing else { return nil }
        // A run that lost ownership wrote this position just before noticing. Its effect happened; adopting
        // its value keeps the history single, exactly as if this run had crashed after running the step.
        return try replay(existing, as: Output.self, stepID: checkpoint.stepID, name: checkpoint.name)
    }

    /// Throws unless a write found this run still owning the workflow: ``DurableError/Code/workflowCancelled``
    /// when it was cancelled, else ``RunInterrupted`` (another run owns it now and finishes it).
    func ensureStillOwner(status: String?, stillOwner: Bool) throws {
        if stillOwner { return }
        if status == WorkflowState.cancelled.rawValue {
            throw DurableError(.workflowCancelled, "the workflow was cancelled", workflowID: workflowID)
        }
        throw RunInterrupted(reason: "the workflow is no longer owned by this run")
    }

    private func stepFailure(_ failure: PortableError, stepID: Int, name: String) -> DurableError {
        DurableError(
            .stepFailed, "step \(stepID) '\(name)' failed: \(failure.name): \(failure.message)", workflowID: workflowID,
            errorName: failure.name)
    }

    func fail(_ error: DurableError) -> DurableError {
        fatalError.withLock { if $0 == nil { $0 = error } }
        return error
    }

    private static func currentTaskIdentity() -> Int? {
        withUnsafeCurrentTask { task in task?.hashValue }
    }

    static func nowMilliseconds() -> Int64 {
        Int64((Date().timeIntervalSince1970 * 1000).rounded())
    }
}

/// Marks code running inside a step body: durable operations called there are plain calls, as in DBOS.
enum StepScope {
    @TaskLocal static var isInsideStep = false
}

/// The stored form of a step that returns nothing: JSON `null`.
struct NoOutput: Codable, Sendable {
    init() {}
    init(from decoder: any Decoder) throws {}
    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encodeNil()
    }
}

/// Unwinds a workflow body parked at a long durable sleep (see ``DurableConfiguration/parkSleepsLongerThan``).
struct RunParked: Error {}

/// Thrown inside a run that has lost ownership of its workflow (another process took it over or already
/// recorded its step). The run stops quietly and writes nothing more; the owner finishes the workflow.
struct RunInterrupted: Error {
    var reason: String
}
