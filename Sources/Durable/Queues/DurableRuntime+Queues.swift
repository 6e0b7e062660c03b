import Foundation

extension DurableRuntime {
    /// Enqueues a workflow on a declared queue. It starts, in whichever process serving the queue has capacity,
    /// once the queue's limits allow; the returned handle awaits it from here.
    ///
    /// - Throws: ``DurableError/Code/invalidArgument`` for an undeclared queue, ``DurableError/Code/queueDeduplicated``
    ///   when another live workflow on the queue holds `options.deduplicationID` (unless the policy is
    ///   `.returnExisting`), ``DurableError/Code/conflictingWorkflowID`` when the ID belongs to another workflow.
    public func enqueue<W: Workflow>(
        _ workflow: W.Type, _ input: W.Input, queue: String, options: EnqueueOptions = EnqueueOptions()
    ) async throws -> WorkflowHandle<W.Output> {
        let engine = try await launchedEngine()
        let encoded = try PortableJSON.encodeInput(input, limit: configuration.maxPayloadBytes)
        let id = try await engine.enqueue(name: W.name, input: encoded, queue: queue, options: options)
        return WorkflowHandle(id: id, runtime: self)
    }
}

extension WorkflowEngine {
    /// Enqueues an encoded input; returns the ID of the workflow that now holds the slot (a new one, or the
    /// deduplication holder under `.returnExisting`).
    func enqueue(name: String, input: String, queue: String, options: EnqueueOptions) async throws -> String {
        guard let declared = declaredQueues[queue] else {
            throw DurableError(
                .invalidArgument,
                "queue '\(queue)' is not declared; call DurableRuntime.register(queue:) with it before launch")
        }
        let id = options.id ?? UUID().uuidString.lowercased()
        try DurableRuntime.validateWorkflowID(id)
        try DurableRuntime.validateTimeout(options.timeout)
        if let delay = options.delay, delay < .zero || delay > longestWait {
            throw DurableError(
                .invalidArgument, "enqueue delay must be between zero and ten years (got \(delay))", workflowID: id)
        }
        try Self.validatePartition(options, of: declared, workflowID: id)
        try ArgumentChecks.text(options.deduplicationID, "the deduplication ID", workflowID: id)
        let delayUntil = options.delay.map { WorkflowContext.nowMilliseconds() + Self.milliseconds($0) }
        do {
            let outcome = try await database.enqueue(
                id: id, name: name, queue: declared.name, input: input, priority: options.priority,
                deduplicationID: options.deduplicationID, delayUntil: delayUntil,
                timeoutMilliseconds: options.timeout.map(Self.milliseconds),
                token: newRunToken(), applicationVersion: configuration.applicationVersion,
                partitionKey: options.partitionKey
            )
            if !outcome.created, let existing = outcome.existingName, existing != name {
                throw DurableError(
                    .conflictingWorkflowID,
                    "workflow ID is already used by a workflow named '\(existing)', not '\(name)'", workflowID: id)
            }
            if outcome.created { wakeDispatcher() }
            return id
        } catch let error as DurableError where error.sqlState == "23505" {
            guard let deduplicationID = options.deduplicationID else { throw error }
            switch options.deduplicationPolicy {
            case .reject:
                throw DurableError(
                    .queueDeduplicated, "another workflow on queue '\(queue)' holds this deduplication ID",
                    workflowID: id)
            case .returnExisting:
                guard
                    let holder = try await database.deduplicationHolder(
                        queue: declared.name, deduplicationID: deduplicationID)
                else { throw error }
                return holder
            }
        }
    }
}

extension WorkflowEngine {
    /// A partitioned queue needs a partition key on every enqueue, and only it takes one; as in DBOS, a
    /// partitioned queue has no deduplication.
    static func validatePartition(_ options: EnqueueOptions, of queue: WorkflowQueue, workflowID: String) throws {
        func invalid(_ message: String) -> DurableError {
            DurableError(.invalidArgument, message, workflowID: workflowID)
        }
        guard queue.isPartitioned else {
            if options.partitionKey != nil {
                throw invalid(
                    "queue '\(queue.name)' is not partitioned, so an enqueue onto it takes no partitionKey; declare partition limits on the queue to partition it"
                )
            }
            return
        }
        guard let key = options.partitionKey else {
            throw invalid(
                "queue '\(queue.name)' is partitioned: every enqueue onto it needs EnqueueOptions.partitionKey")
        }
        if key.isEmpty { throw invalid("a partition key must not be empty") }
        try ArgumentChecks.text(key, "the partition key", workflowID: workflowID)
        if options.deduplicationID != nil {
            throw invalid(
                "queue '\(queue.name)' is partitioned, and partitioned queues do not support deduplication IDs")
        }
    }
}

extension WorkflowContext {
    /// Enqueues a workflow from inside this one. Checkpointed: a recovered workflow gets the same handle back and
    /// never enqueues twice (the default ID, `"<this workflow's ID>-<step number>"`, makes a repeat a no-op).
    public func enqueue<W: Workflow>(
        _ workflow: W.Type, _ input: W.Input, queue: String, options: EnqueueOptions = EnqueueOptions()
    ) async throws -> WorkflowHandle<W.Output> {
        var options = options
        if options.id == nil { options.id = "\(workflowID)-\(nextStepNumber)" }
        let encoded = try PortableJSON.encodeInput(input, limit: engine.configuration.maxPayloadBytes)
        let (engine, chosen) = (self.engine, options)
        let id: String = try await step("DBOS.enqueue") {
            try await engine.enqueue(name: W.name, input: encoded, queue: queue, options: chosen)
        }
        return WorkflowHandle(id: id, engine: engine)
    }
}
