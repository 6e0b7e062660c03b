import LibPQ

extension SystemDatabase {
    /// What enqueueing found: a new row, or the name on the row already holding the ID.
    struct EnqueueOutcome: Sendable {
        var created: Bool
        var existingName: String?
    }

    /// Inserts an `ENQUEUED` (or `DELAYED`) row and wakes dispatchers. A deduplication conflict surfaces as a
    /// ``DurableError`` with SQLSTATE 23505.
    func enqueue(id: String, name: String, queue: String, input: String, priority: Int, deduplicationID: String?, delayUntil: Int64?, timeoutMilliseconds: Int64?, token: String, applicationVersion: String) async throws -> EnqueueOutcome {
        let result = try await query("enqueue workflow", workflowID: id, queues.enqueue, [
            id, name, queue, input, priority, deduplicationID, delayUntil, timeoutMilliseconds, token, applicationVersion,
        ])
        return EnqueueOutcome(created: (result.first?.int(0) ?? 0) > 0, existingName: result.first?.string(1))
    }

    /// The workflow holding a deduplication ID on a queue, if any.
    func deduplicationHolder(queue: String, deduplicationID: String) async throws -> String? {
        try await query("find deduplicated workflow", queues.existingDeduplicated, [queue, deduplicationID]).first?.string(0)
    }

    /// Moves due `DELAYED` workflows to `ENQUEUED`; returns how many moved.
    func promoteDelayed() async throws -> Int {
        try await query("start delayed workflows", queues.promoteDelayed, []).rows.count
    }

    /// Claims up to `limit` workflows of `queue` for this process, honouring the queue's shared budget.
    ///
    /// Without a shared budget the claim is one statement with `FOR UPDATE SKIP LOCKED`: concurrent claimants
    /// take disjoint rows. With a global concurrency limit or a rate limit, claimants take a transaction-scoped
    /// advisory lock per queue first, so the count they read and the rows they claim are consistent across
    /// processes (the limit can never be exceeded by two processes counting at once).
    func claimQueued(queue: WorkflowQueue, limit: Int, token: String, executorID: String, applicationVersion: String, names: [String], payloadLimit: Int) async throws -> [ClaimedWorkflow] {
        guard limit > 0, !names.isEmpty else { return [] }
        let rateLimited = queue.rateLimit != nil
        func claim(_ connection: PostgresConnection, _ count: Int) async throws -> [ClaimedWorkflow] {
            guard count > 0 else { return [] }
            let rows = try await connection.query(queues.claim, [
                queue.name, count, token, executorID, applicationVersion, rateLimited, PostgresTextArray(names), payloadLimit,
            ])
            return rows.rows.compactMap { row in
                guard let id = row.string(0), let attempts = row.int(2) else { return nil }
                return ClaimedWorkflow(id: id, name: row.string(1), recoveryAttempts: attempts, input: row.string(3),
                                       inputBytes: row.int(4) ?? 0, deadlineMilliseconds: row.int64(5), queueName: queue.name)
            }
        }
        return try await retry.run("claim queued workflows") {
            guard queue.hasSharedBudget else {
                return try await pool.withConnection { try await claim($0, limit) }
            }
            return try await pool.withTransaction { connection in
                try await connection.query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", [schema + "\u{1F}" + queue.name])
                var allowed = limit
                if let concurrency = queue.concurrency {
                    let running = try await connection.query(queues.runningCount, [queue.name]).first?.int(0) ?? 0
                    allowed = min(allowed, concurrency - running)
                }
                if let rate = queue.rateLimit {
                    let recent = try await connection.query(queues.recentStarts, [queue.name, WorkflowEngine.milliseconds(rate.period)]).first?.int(0) ?? 0
                    allowed = min(allowed, rate.limit - recent)
                }
                return try await claim(connection, allowed)
            }
        }
    }

    /// Records a declared queue in `queues`, so DBOS's tools list it with its limits.
    func registerQueue(_ queue: WorkflowQueue) async throws {
        let period = queue.rateLimit.map { Double(WorkflowEngine.milliseconds($0.period)) / 1000 }
        _ = try await query("register queue", queues.registerQueue, [
            queue.name, queue.concurrency, queue.workerConcurrency, queue.rateLimit?.limit, period,
        ])
    }
}
