/// The one path of every durable operation (step, sleep, send, recv, events, streams, children, transactions, and
/// the recorded now/UUID/random, which are steps): take the next step number, and either replay what an earlier
/// run recorded at that number or perform the operation, which records it. A new operation is a short method that
/// calls ``operation(_:nested:replay:perform:)`` with what is particular to it.
extension WorkflowContext {
    /// Takes the next step number (checking, before anything runs, that the run may still go on: see
    /// ``beginOperation(_:nested:)``), then replays the checkpoint recorded there by an earlier run, or performs
    /// the operation for the first time.
    ///
    /// - Parameters:
    ///   - name: the operation's durable name; a replay checks it against the recorded one.
    ///   - nested: taken inside another operation (the deadline a `recv` records), so it counts no step of its own.
    ///   - replay: what the operation returns from the checkpoint recorded at its number.
    ///   - perform: runs the operation for the first time at that number, and records it.
    ///   - isolation: the caller's, so `perform` runs where the caller's closures may run (a step body called from
    ///     an actor's method).
    func operation<Output: Sendable>(
        _ name: String, nested: Bool = false,
        isolation: isolated (any Actor)? = #isolation,
        replay replayed: (_ checkpoint: RecordedStep, _ stepID: Int) throws -> Output,
        perform: (_ stepID: Int) async throws -> Output
    ) async throws -> Output {
        let stepID = try beginOperation(name, nested: nested)
        if let checkpoint = recorded[stepID] { return try replayed(checkpoint, stepID) }
        return try await perform(stepID)
    }

    /// An operation whose replay returns its recorded value, decoded as `Output`.
    func operation<Output: Decodable & Sendable>(
        _ name: String, nested: Bool = false, isolation: isolated (any Actor)? = #isolation,
        perform: (_ stepID: Int) async throws -> Output
    ) async throws -> Output {
        try await operation(
            name, nested: nested, isolation: isolation,
            replay: { checkpoint, stepID in
                try replay(checkpoint, as: Output.self, stepID: stepID, name: name)
            }, perform: perform)
    }

    /// This run's checkpoint of operation `stepID`, completed now (and started at `startedAt`, or now).
    func checkpoint(_ stepID: Int, _ name: String, output: String?, error: String? = nil, startedAt: Int64? = nil)
        -> StepCheckpoint
    {
        let now = Self.nowMilliseconds()
        return StepCheckpoint(
            workflowID: workflowID, stepID: stepID, name: name, output: output, error: error,
            startedAtMilliseconds: startedAt ?? now, completedAtMilliseconds: now, ownerToken: ownerToken
        )
    }
}
