import LibPQ

extension SystemDatabase {
    /// What enqueueing found: a new row, or the name on the row already holding the ID.
    struct EnqueueOutcome: Sendable {
        var created: Bool
        var existingName: String?
    }

    /// Inserts an `ENQUEUED` (or `DELAYED`) row and wakes dispatchers. A deduplication conflict surfaces as a
    /// ``DurableError`` with SQLSTATE 23505.
    func enqueue(id: String, name: String, queue: String, input: String, priority: Int, deduplicationID: String?, delayUntil: Int64?, timeoutMilliseconds: Int64?, token: String, applicationVersion: String, partitionKey: String?) async throws -> EnqueueOutcome {
        let result = try await query("enqueue workflow", workflowID: id, queues.enqueue, [
            id, name, queue, input, priority, deduplicationID, delayUntil, timeoutMilliseconds, token, applicationVersion,
            partitionKey,
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

    /// Claims up to `limit` workflows of `queue` (of one partition of it, when `partition` is given) for this
    /// process, honouring the queue's shared budgets.
    ///
    /// Without a shared budget the claim is one statement with `FOR UPDATE SKIP LOCKED`: concurrent claimants
    /// take disjoint rows. With a global concurrency limit or a rate limit, claimants take a transaction-scoped
    /// advisory lock first, so the count they read and the rows they claim are consistent across processes (the
    /// limit can never be exceeded by two processes counting at once). The lock covers the whole queue when a
    /// queue-wide budget exists, and only the partition when the partition's own limits are the only shared ones,
    /// so partitions of such a queue are claimed in parallel.
    func claimQueued(queue: WorkflowQueue, partition: String?, limit: Int, token: String, executorID: String, applicationVersion: String, names: [String], payloadLimit: Int) async throws -> [ClaimedWorkflow] {
        guard limit > 0, !names.isEmpty else { return [] }
        let rateLimited = queue.rateLimit != nil || queue.partitionRateLimit != nil
        func claimed(_ rows: QueryResult) -> [ClaimedWorkflow] {
            rows.rows.compactMap { row in
                guard let id = row.string(0), let attempts = row.int(2) else { return nil }
                return ClaimedWorkflow(id: id, name: row.string(1), recoveryAttempts: attempts, input: row.string(3),
                                       inputBytes: row.int(4) ?? 0, deadlineMilliseconds: row.int64(5), queueName: queue.name,
                                       partitionKey: row.string(6))
            }
        }
        func claim(_ connection: PGConnection, _ count: Int) async throws -> [ClaimedWorkflow] {
            guard count > 0 else { return [] }
            var parameters: [any PGParameter] = [
                queue.name, count, token, executorID, applicationVersion, rateLimited, PGTextArray(names), payloadLimit,
            ]
            if let partition { parameters.append(partition) }
            return claimed(try await connection.query(partition == nil ? queues.claim : queues.partitionClaim, parameters))
        }
        func count(_ connection: PGConnection, _ sql: String, _ parameters: [any PGParameter]) async throws -> Int {
            try await connection.query(sql, parameters).first?.int(0) ?? 0
        }
        var attempt = 0
        return try await retry.run("claim queued workflows") {
            attempt += 1
            if attempt > 1 {
                // The last attempt's connection broke, perhaps after its claim committed: what it took is PENDING under
                // this token and would otherwise stay so, unrun, for as long as this process lives (seen in torture).
                let earlier = claimed(try await pool.withConnection { try await $0.query(queues.claimedUnder, [token, payloadLimit, queue.name]) })
                if !earlier.isEmpty { return earlier }
            }
            guard queue.hasSharedBudget else {
                return try await pool.withConnection { try await claim($0, limit) }
            }
            return try await pool.withTransaction { connection in
                var lockName = schema + "\u{1F}" + queue.name
                if let partition, !queue.hasQueueWideBudget { lockName += "\u{1F}" + partition }
                try await connection.query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", [lockName])
                var allowed = limit
                if let concurrency = queue.concurrency {
                    allowed = min(allowed, concurrency - (try await count(connection, queues.runningCount, [queue.name])))
                }
                if let rate = queue.rateLimit {
                    let period = WorkflowEngine.milliseconds(rate.period)
                    allowed = min(allowed, rate.limit - (try await count(connection, queues.recentStarts, [queue.name, period])))
                }
                if let partition, allowed > 0, let concurrency = queue.partitionConcurrency {
                    allowed = min(allowed, concurrency - (try await count(connection, queues.partitionRunningCount, [queue.name, partition])))
                }
                if let partition, allowed > 0, let rate = queue.partitionRateLimit {
                    let period = WorkflowEngine.milliseconds(rate.period)
                    allowed = min(allowed, rate.limit - (try await count(connection, queues.partitionRecentStarts, [queue.name, period, partition])))
                }
                return try await claim(connection, allowed)
            }
        }
    }

    /// An `ENQUEUED` workflow this process leaves alone although it serves its queue.
    struct UnservableQueued: Sendable {
        var id: String
        var name: String?
        var queue: String
        /// Its name is registered here: what is missing is its partition key (on a partitioned queue).
        var nameIsKnown: Bool
    }

    /// A few `ENQUEUED` workflows on `queues` that no dispatch here takes: their names are not among `names`,
    /// or they lack a partition key on one of `partitioned`.
    func unservableQueued(queues: [String], partitioned: [String], names: [String], applicationVersion: String) async throws -> [UnservableQueued] {
        let result = try await query("look for queued workflows this process cannot take", self.queues.unservableQueued, [
            PGTextArray(queues), PGTextArray(names), applicationVersion, PGTextArray(partitioned),
        ])
        return result.rows.compactMap { row in
            guard let id = row.string(0), let queue = row.string(2) else { return nil }
            return UnservableQueued(id: id, name: row.string(1), queue: queue, nameIsKnown: row.bool(3) ?? false)
        }
    }

    /// Up to `limit` partitions of `queue` holding `ENQUEUED` workflows, in key order after `cursor` (from the
    /// first when nil).
    func activePartitions(queue: String, after cursor: String?, limit: Int) async throws -> [String] {
        let result: QueryResult
        if let cursor {
            result = try await query("list queue partitions", queues.activePartitionsAfter, [queue, limit, cursor])
        } else {
            result = try await query("list queue partitions", queues.activePartitions, [queue, limit])
        }
        return result.rows.compactMap { $0.string(0) }
    }

    /// Records a declared queue in `queues`, so DBOS's tools list it with its limits.
    func registerQueue(_ queue: WorkflowQueue) async throws {
        func seconds(_ limit: WorkflowQueue.RateLimit?) -> Double? {
            limit.map { Double(WorkflowEngine.milliseconds($0.period)) / 1000 }
        }
        _ = try await query("register queue", queues.registerQueue, [
            queue.name, queue.concurrency, queue.workerConcurrency, queue.rateLimit?.limit, seconds(queue.rateLimit),
            queue.isPartitioned, queue.partitionConcurrency, queue.partitionWorkerConcurrency, queue.partitionRateLimit?.limit,
            seconds(queue.partitionRateLimit),
        ])
    }
}
