import LibPQ

/// Queues: enqueueing, claiming under the queues' limits, and what DBOS's tools read about queues, in DBOS's
/// `workflow_status` and `queues` tables. Each statement sits in the method that runs it.
extension SystemDatabase {
    /// Enqueues NOTIFY this channel so idle dispatchers in every process look at once.
    static let queueWakeupChannel = "durable_queue_wakeup"

    /// What enqueueing found: a new row, or the name on the row already holding the ID.
    struct EnqueueOutcome: Sendable {
        var created: Bool
        var existingName: String?
    }

    /// Inserts an `ENQUEUED` (or `DELAYED`) row with no owner yet, as DBOS does, and wakes dispatchers. A
    /// deduplication conflict surfaces as a ``DurableError`` with SQLSTATE 23505.
    func enqueue(
        id: String, name: String, queue: String, input: String, priority: Int, deduplicationID: String?,
        delayUntil: Int64?, timeoutMilliseconds: Int64?, token: String, applicationVersion: String,
        partitionKey: String?
    ) async throws -> EnqueueOutcome {
        let result = try await query(
            "enqueue workflow", workflowID: id,
            """
            WITH enqueued AS (
                INSERT INTO \(identifier: schema).workflow_status
                    (workflow_uuid, status, name, queue_name, priority, deduplication_id, delay_until_epoch_ms,
                     workflow_timeout_ms, recovery_attempts, serialization, creator_xid, application_version,
                     queue_partition_key)
                VALUES (\(id), CASE WHEN \(delayUntil)::bigint IS NULL THEN 'ENQUEUED' ELSE 'DELAYED' END, \(name), \(queue),
                        \(priority)::int4, \(deduplicationID), \(delayUntil)::bigint, \(timeoutMilliseconds)::bigint, 0, 'portable_json',
                        \(token), \(applicationVersion), \(partitionKey))
                ON CONFLICT (workflow_uuid) DO NOTHING
                RETURNING workflow_uuid
            ), stored_input AS (
                INSERT INTO \(identifier: schema).workflow_input (workflow_uuid, inputs)
                SELECT workflow_uuid, \(input)::text FROM enqueued
                ON CONFLICT (workflow_uuid) DO NOTHING
            ), notified AS (
                SELECT pg_notify(\(Self.queueWakeupChannel), \(queue)) FROM enqueued
            )
            SELECT (SELECT count(*) FROM notified), (SELECT name FROM \(identifier: schema).workflow_status WHERE workflow_uuid = \(id))
            """)
        let row = try result.decodeFirst(Int.self, String?.self)
        return EnqueueOutcome(created: (row?.0 ?? 0) > 0, existingName: row?.1 ?? nil)
    }

    /// The workflow holding a deduplication ID on a queue, if any.
    func deduplicationHolder(queue: String, deduplicationID: String) async throws -> String? {
        try await query(
            "find deduplicated workflow",
            """
            SELECT workflow_uuid FROM \(identifier: schema).workflow_status
            WHERE queue_name = \(queue) AND deduplication_id = \(deduplicationID)
            """
        ).decodeFirst(String.self)
    }

    /// Moves due `DELAYED` workflows to `ENQUEUED` (any process may do it; it is idempotent); returns how many moved.
    func promoteDelayed() async throws -> Int {
        let now = Statements.nowMilliseconds
        return try await query(
            "start delayed workflows",
            """
            UPDATE \(identifier: schema).workflow_status SET status = 'ENQUEUED', updated_at = \(fragment: now)
            WHERE status = 'DELAYED' AND delay_until_epoch_ms <= \(fragment: now)
            RETURNING queue_name
            """
        ).rows.count
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
    func claimQueued(
        queue: WorkflowQueue, partition: String?, limit: Int, token: String, executorID: String,
        applicationVersion: String, names: [String], payloadLimit: Int
    ) async throws -> [ClaimedWorkflow] {
        guard limit > 0, !names.isEmpty else { return [] }
        let rateLimited = queue.rateLimit != nil || queue.partitionRateLimit != nil
        // Separate statements per scope (with and without the partition condition) rather than "IS NULL OR …",
        // so each keeps a plan that uses its index.
        let inPartition: PGQuery = partition.map { " AND queue_partition_key = \($0)" } ?? ""
        func claimed(_ result: QueryResult) throws -> [ClaimedWorkflow] {
            try result.decode(String.self, String?.self, Int.self, String?.self, Int?.self, Int64?.self, String?.self)
                .map { id, name, attempts, input, inputBytes, deadline, partitionKey in
                    ClaimedWorkflow(
                        id: id, name: name, recoveryAttempts: attempts, input: input, inputBytes: inputBytes ?? 0,
                        deadlineMilliseconds: deadline, queueName: queue.name, partitionKey: partitionKey)
                }
        }
        func count(_ connection: PGConnection, _ query: PGQuery) async throws -> Int {
            try await connection.query(query).decodeFirst(Int.self) ?? 0
        }
        var attempt = 0
        return try await retry.run("claim queued workflows") {
            attempt += 1
            if attempt > 1 {
                // The last attempt's connection broke, perhaps after its claim committed: what it took is PENDING under
                // this token and would otherwise stay so, unrun, for as long as this process lives (seen in torture).
                let earlier = try claimed(
                    try await pool.withConnection {
                        try await $0.query(claimedUnder(token: token, queue: queue.name, payloadLimit: payloadLimit))
                    })
                if !earlier.isEmpty { return earlier }
            }
            let names = PGTextArray(names)
            func claim(_ connection: PGConnection, _ count: Int) async throws -> [ClaimedWorkflow] {
                guard count > 0 else { return [] }
                return try claimed(
                    try await connection.query(
                        claimStatement(
                            queue: queue.name, count: count, token: token, executorID: executorID,
                            applicationVersion: applicationVersion,
                            rateLimited: rateLimited, names: names, payloadLimit: payloadLimit, inPartition: inPartition
                        )))
            }
            guard queue.hasSharedBudget else {
                return try await pool.withConnection { try await claim($0, limit) }
            }
            return try await pool.withTransaction { connection in
                var lockName = schema + "\u{1F}" + queue.name
                if let partition, !queue.hasQueueWideBudget { lockName += "\u{1F}" + partition }
                let lock: PGQuery = "SELECT pg_advisory_xact_lock(hashtextextended(\(lockName), 0))"
                try await connection.query(lock)
                var allowed = limit
                if let concurrency = queue.concurrency {
                    allowed = min(allowed, concurrency - (try await count(connection, running(in: queue.name, ""))))
                }
                if let rate = queue.rateLimit {
                    let period = WorkflowEngine.milliseconds(rate.period)
                    allowed = min(
                        allowed,
                        rate.limit - (try await count(connection, recentStarts(in: queue.name, period: period, ""))))
                }
                if partition != nil, allowed > 0, let concurrency = queue.partitionConcurrency {
                    allowed = min(
                        allowed, concurrency - (try await count(connection, running(in: queue.name, inPartition))))
                }
                if partition != nil, allowed > 0, let rate = queue.partitionRateLimit {
                    let period = WorkflowEngine.milliseconds(rate.period)
                    allowed = min(
                        allowed,
                        rate.limit
                            - (try await count(connection, recentStarts(in: queue.name, period: period, inPartition))))
                }
                return try await claim(connection, allowed)
            }
        }
    }

    /// Workflows of the queue (of one partition, with `inPartition`) running now.
    private func running(in queue: String, _ inPartition: PGQuery) -> PGQuery {
        "SELECT count(*) FROM \(identifier: schema).workflow_status WHERE queue_name = \(queue) AND status = 'PENDING'\(inPartition)"
    }

    /// Starts inside the rate-limit window, as DBOS counts them.
    private func recentStarts(in queue: String, period: Int64, _ inPartition: PGQuery) -> PGQuery {
        """
        SELECT count(*) FROM \(identifier: schema).workflow_status
        WHERE queue_name = \(queue) AND rate_limited AND status NOT IN ('ENQUEUED', 'DELAYED')
          AND started_at_epoch_ms > \(fragment: Statements.nowMilliseconds) - \(period)::bigint\(inPartition)
        """
    }

    /// The claim: lower priority first, then oldest; rows locked by another claimant are skipped. A claim that takes
    /// anything also records this executor's heartbeat, in the same transaction: a process that looked silent
    /// (paused, or cut off by a database restart) may have been taken over and its heartbeat row forgotten; if it
    /// then claimed work and was killed before its next heartbeat, no process would ever look for that work again
    /// (the torture run once left 19 workflows PENDING so).
    private func claimStatement(
        queue: String, count: Int, token: String, executorID: String, applicationVersion: String, rateLimited: Bool,
        names: PGTextArray, payloadLimit: Int, inPartition: PGQuery
    ) -> PGQuery {
        let now = Statements.nowMilliseconds
        return """
            WITH candidates AS (
                SELECT workflow_uuid FROM \(identifier: schema).workflow_status
                WHERE queue_name = \(queue) AND status = 'ENQUEUED'
                  AND (application_version = \(applicationVersion) OR application_version IS NULL)
                  AND name = ANY(\(names)::text[])\(inPartition)
                ORDER BY priority, created_at
                LIMIT \(count)
                FOR UPDATE SKIP LOCKED
            ), claimed AS (
                UPDATE \(identifier: schema).workflow_status ws
                SET status = 'PENDING', owner_xid = \(token), executor_id = \(executorID), application_version = \(applicationVersion),
                    started_at_epoch_ms = \(fragment: now), rate_limited = \(rateLimited)::boolean,
                    recovery_attempts = ws.recovery_attempts + 1, updated_at = \(fragment: now),
                    workflow_deadline_epoch_ms = CASE
                        WHEN ws.workflow_timeout_ms IS NOT NULL AND ws.workflow_deadline_epoch_ms IS NULL
                        THEN \(fragment: now) + ws.workflow_timeout_ms ELSE ws.workflow_deadline_epoch_ms END
                FROM candidates c
                WHERE ws.workflow_uuid = c.workflow_uuid
                RETURNING ws.workflow_uuid, ws.name, ws.recovery_attempts, ws.inputs, ws.workflow_deadline_epoch_ms,
                          ws.queue_partition_key
            ), alive AS (
                INSERT INTO \(identifier: schema).durable_executors (executor_id, application_version, last_heartbeat)
                SELECT \(executorID), \(applicationVersion), \(fragment: now) WHERE EXISTS (SELECT 1 FROM claimed)
                ON CONFLICT (executor_id) DO UPDATE
                    SET application_version = EXCLUDED.application_version, last_heartbeat = EXCLUDED.last_heartbeat
            )
            SELECT c.workflow_uuid, c.name, c.recovery_attempts,
                   CASE WHEN octet_length(COALESCE(i.inputs, c.inputs)) <= \(payloadLimit) THEN COALESCE(i.inputs, c.inputs) END,
                   octet_length(COALESCE(i.inputs, c.inputs)), c.workflow_deadline_epoch_ms, c.queue_partition_key
            FROM claimed c LEFT JOIN \(identifier: schema).workflow_input i ON i.workflow_uuid = c.workflow_uuid
            """
    }

    /// What a claim under `token` left `PENDING` (the claim's columns), for when its connection broke and the
    /// commit's fate is unknown.
    private func claimedUnder(token: String, queue: String, payloadLimit: Int) -> PGQuery {
        """
        SELECT ws.workflow_uuid, ws.name, ws.recovery_attempts,
               CASE WHEN octet_length(COALESCE(i.inputs, ws.inputs)) <= \(payloadLimit) THEN COALESCE(i.inputs, ws.inputs) END,
               octet_length(COALESCE(i.inputs, ws.inputs)), ws.workflow_deadline_epoch_ms, ws.queue_partition_key
        FROM \(identifier: schema).workflow_status ws LEFT JOIN \(identifier: schema).workflow_input i ON i.workflow_uuid = ws.workflow_uuid
        WHERE ws.owner_xid = \(token) AND ws.status = 'PENDING' AND ws.queue_name = \(queue)
        """
    }

    /// An `ENQUEUED` workflow this process leaves alone although it serves its queue.
    struct UnservableQueued: Sendable {
        var id: String
        var name: String?
        var queue: String
        /// Its name is registered here: what is missing is its partition key (on a partitioned queue).
        var nameIsKnown: Bool
    }

    /// A few (for a warning) `ENQUEUED` workflows on `queues` that no dispatch here takes: their names are not
    /// among `names` (an outside client enqueued them), or they lack a partition key on one of `partitioned`
    /// (DBOS's clients allow that; the dispatch, as DBOS's, only takes workflows of some partition).
    func unservableQueued(queues: [String], partitioned: [String], names: [String], applicationVersion: String)
        async throws -> [UnservableQueued]
    {
        let names = PGTextArray(names)
        let result = try await query(
            "look for queued workflows this process cannot take",
            """
            SELECT workflow_uuid, name, queue_name, coalesce(name = ANY(\(names)::text[]), false)
            FROM \(identifier: schema).workflow_status
            WHERE status = 'ENQUEUED' AND queue_name = ANY(\(PGTextArray(queues))::text[])
              AND (name IS NULL OR NOT (name = ANY(\(names)::text[]))
                   OR (queue_partition_key IS NULL AND queue_name = ANY(\(PGTextArray(partitioned))::text[])))
              AND (application_version = \(applicationVersion) OR application_version IS NULL)
            LIMIT 20
            """)
        return try result.decode(String.self, String?.self, String.self, Bool.self).map {
            UnservableQueued(id: $0, name: $1, queue: $2, nameIsKnown: $3)
        }
    }

    /// Up to `limit` partitions of `queue` holding `ENQUEUED` workflows, in key order after `cursor` (from the
    /// first when nil).
    ///
    /// A loose index scan (one probe per partition, on the partition dequeue index), so the cost follows the number
    /// of partitions, not the backlog. The statement from the first key and the one after a cursor differ, so the
    /// cursor bounds the index scan in a generic plan too.
    func activePartitions(queue: String, after cursor: String?, limit: Int) async throws -> [String] {
        let afterCursor: PGQuery = cursor.map { " AND queue_partition_key > \($0)" } ?? ""
        return try await query(
            "list queue partitions",
            """
            WITH RECURSIVE partitions(key) AS (
                SELECT min(queue_partition_key) FROM \(identifier: schema).workflow_status
                WHERE queue_name = \(queue) AND status = 'ENQUEUED' AND queue_partition_key IS NOT NULL\(afterCursor)
                UNION ALL
                SELECT (SELECT min(queue_partition_key) FROM \(identifier: schema).workflow_status
                        WHERE queue_name = \(queue) AND status = 'ENQUEUED' AND queue_partition_key > p.key)
                FROM partitions p WHERE p.key IS NOT NULL
            )
            SELECT key FROM partitions WHERE key IS NOT NULL LIMIT \(limit)
            """
        ).decode(String.self)
    }

    /// Records a declared queue in `queues`, so DBOS's tools list it with its limits.
    func registerQueue(_ queue: WorkflowQueue) async throws {
        func seconds(_ limit: WorkflowQueue.RateLimit?) -> Double? {
            limit.map { Double(WorkflowEngine.milliseconds($0.period)) / 1000 }
        }
        _ = try await query(
            "register queue",
            """
            INSERT INTO \(identifier: schema).queues (name, concurrency, worker_concurrency, rate_limit_max, rate_limit_period_sec,
                partition_queue, partition_concurrency, partition_worker_concurrency, partition_rate_limit_max,
                partition_rate_limit_period_sec)
            VALUES (\(queue.name), \(queue.concurrency)::int4, \(queue.workerConcurrency)::int4, \(queue.rateLimit?.limit)::int4,
                    \(seconds(queue.rateLimit))::float8, \(queue.isPartitioned)::boolean, \(queue.partitionConcurrency)::int4,
                    \(queue.partitionWorkerConcurrency)::int4, \(queue.partitionRateLimit?.limit)::int4,
                    \(seconds(queue.partitionRateLimit))::float8)
            ON CONFLICT (name) DO UPDATE SET concurrency = EXCLUDED.concurrency,
                worker_concurrency = EXCLUDED.worker_concurrency, rate_limit_max = EXCLUDED.rate_limit_max,
                rate_limit_period_sec = EXCLUDED.rate_limit_period_sec, partition_queue = EXCLUDED.partition_queue,
                partition_concurrency = EXCLUDED.partition_concurrency,
                partition_worker_concurrency = EXCLUDED.partition_worker_concurrency,
                partition_rate_limit_max = EXCLUDED.partition_rate_limit_max,
                partition_rate_limit_period_sec = EXCLUDED.partition_rate_limit_period_sec,
                updated_at = \(fragment: Statements.nowMilliseconds)
            """)
    }
}
