import Foundation

extension WorkflowContext {
    /// Starts a registered workflow as a child of this one and returns its handle.
    ///
    /// The child's ID is `"<parent ID>-<step number>"` unless given; the start and this workflow's checkpoint of
    /// it commit together, so a recovered parent gets the same child back and never starts it twice. The child
    /// inherits this workflow's timeout deadline.
    public func startChild<W: Workflow>(_ workflow: W.Type, _ input: W.Input, id: String? = nil) async throws
        -> WorkflowHandle<W.Output>
    {
        try await operation(
            W.name,
            replay: { checkpoint, stepID in
                guard checkpoint.name == W.name, let childID = checkpoint.childWorkflowID else {
                    throw fail(
                        DurableError(
                            .nonDeterministicWorkflow,
                            "step \(stepID) was recorded as '\(checkpoint.name)' but the code now starts child workflow '\(W.name)' at that position",
                            workflowID: workflowID
                        ))
                }
                return WorkflowHandle(id: childID, engine: engine)
            }, perform: { stepID in try await startChild(workflow, input, id: id, stepID: stepID) })
    }

    /// A child start's first run: the child's row and this workflow's checkpoint of it, in one statement.
    private func startChild<W: Workflow>(_ workflow: W.Type, _ input: W.Input, id: String?, stepID: Int) async throws
        -> WorkflowHandle<W.Output>
    {
        let childID = id ?? "\(workflowID)-\(stepID)"
        try DurableRuntime.validateWorkflowID(childID)
        guard let registration = engine.registry[W.name] else {
            throw DurableError(
                .workflowNotRegistered, "child workflow '\(W.name)' is not registered; register it before launch",
                workflowID: workflowID)
        }
        let encoded = try PortableJSON.encodeInput(input, limit: engine.configuration.maxPayloadBytes)
        let token = engine.newRunToken()
        let outcome = try await engine.database.startChild(
            id: childID, name: W.name, input: encoded, token: token,
            executorID: engine.configuration.executorID, applicationVersion: engine.configuration.applicationVersion,
            deadline: deadline, parentID: workflowID, parentStep: stepID, parentToken: ownerToken
        )
        try ensureStillOwner(status: outcome.workflowStatus, stillOwner: outcome.stillOwner)
        if outcome.created {
            engine.startRun(registration, id: childID, input: encoded, token: token, recorded: [:], deadline: deadline)
        } else if let existing = outcome.childName, existing != W.name {
            throw DurableError(
                .conflictingWorkflowID,
                "child workflow ID is already used by a workflow named '\(existing)', not '\(W.name)'",
                workflowID: childID)
        }
        return WorkflowHandle(id: childID, engine: engine)
    }

    /// Starts a child workflow (see ``startChild(_:_:id:)``) and waits for its result.
    public func runChild<W: Workflow>(_ workflow: W.Type, _ input: W.Input, id: String? = nil) async throws -> W.Output
    {
        try await startChild(workflow, input, id: id).result()
    }
}
