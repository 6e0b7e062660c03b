import LibPQ

/// Executors and the processes that hold their IDs: heartbeats (`durable_executors`, migration 0002, and
/// `durable_executor_instances`, migration 0003) and the takeover of silent executors' work. Each statement sits in
/// the method that runs it, built as a ``LibPQ/PGQuery``: its values are interpolated where they go (each becomes
/// a bound `$n`), and its columns are decoded by position right below it.
extension SystemDatabase {
    /// A process is presumed alive while its last heartbeat is younger than this many of its own heartbeat
    /// intervals: one late heartbeat (a busy machine) is not death.
    static let liveHeartbeats = 3

    /// Another process holding the same executor ID, as `durable_executor_instances` records it.
    struct ExecutorHolder: Sendable {
        var instanceID: String
        var process: ProcessIdentity
        var lastHeartbeat: Int64
        var silentMilliseconds: Int64
        var heartbeatIntervalMilliseconds: Int64
        /// It registered before the asking process.
        var isEarlier: Bool
    }

    /// Records (or refreshes) this process as a holder of its executor ID.
    func registerInstance(
        _ id: String, executorID: String, applicationVersion: String, process: ProcessIdentity, heartbeatInterval: Int64
    ) async throws {
        let now = Statements.nowMilliseconds
        _ = try await query(
            "register this process",
            """
            INSERT INTO \(identifier: schema).durable_executor_instances
                (instance_id, executor_id, application_version, host, process_id, process_started, heartbeat_interval_ms,
                 started_at, last_heartbeat)
            VALUES (\(id), \(executorID), \(applicationVersion), \(process.host), \(process.processID)::integer,
                    \(process.started), \(heartbeatInterval)::bigint, \(fragment: now), \(fragment: now))
            ON CONFLICT (instance_id) DO UPDATE
                SET last_heartbeat = EXCLUDED.last_heartbeat, application_version = EXCLUDED.application_version
            """)
    }

    /// The other processes recorded as holding `executorID`: how long each has been silent, and whether each
    /// registered before `instanceID` (the earlier of two holders keeps the ID).
    func executorHolders(_ executorID: String, besides instanceID: String) async throws -> [ExecutorHolder] {
        let result = try await query(
            "list the processes holding this executor ID",
            """
            SELECT i.instance_id, i.host, i.process_id, i.process_started, i.last_heartbeat,
                   \(fragment: Statements.nowMilliseconds) - i.last_heartbeat, i.heartbeat_interval_ms,
                   COALESCE((i.started_at, i.instance_id) < (
                       SELECT me.started_at, me.instance_id FROM \(identifier: schema).durable_executor_instances me
                       WHERE me.instance_id = \(instanceID)
                   ), true)
            FROM \(identifier: schema).durable_executor_instances i
            WHERE i.executor_id = \(executorID) AND i.instance_id <> \(instanceID)
            """)
        return try result.decode(
            String.self, String.self, Int32.self, String?.self, Int64.self, Int64.self, Int64.self, Bool.self
        )
        .map { id, host, pid, started, beat, silent, interval, earlier in
            ExecutorHolder(
                instanceID: id, process: ProcessIdentity(host: host, processID: pid, started: started),
                lastHeartbeat: beat,
                silentMilliseconds: silent, heartbeatIntervalMilliseconds: interval, isEarlier: earlier
            )
        }
    }

    /// Forgets a process judged dead, unless it has recorded a heartbeat since it was seen.
    func forgetInstance(_ holder: ExecutorHolder) async throws {
        _ = try await query(
            "forget a dead process",
            """
            DELETE FROM \(identifier: schema).durable_executor_instances
            WHERE instance_id = \(holder.instanceID) AND last_heartbeat = \(holder.lastHeartbeat)::bigint
            """)
    }

    /// Removes this process's own row (graceful shutdown). One attempt, not retried through an outage: shutdown
    /// must not wait for the database; a row left behind only delays the next launch under the same executor ID
    /// on another host by a few heartbeats (on this host, the process is seen to be gone).
    func removeInstance(_ id: String) async throws {
        let query: PGQuery = "DELETE FROM \(identifier: schema).durable_executor_instances WHERE instance_id = \(id)"
        _ = try await pool.withConnection { try await $0.query(query) }
    }

    /// Records the heartbeat of the executor (which takeover reads) and of this process in one round trip, and
    /// forgets processes silent for twenty heartbeats (at least five minutes), which died without a graceful
    /// shutdown. Returns false when this process's row was gone (another process judged it dead while it did not
    /// answer).
    func recordHeartbeat(executorID: String, applicationVersion: String, instanceID: String) async throws -> Bool {
        let now = Statements.nowMilliseconds
        let result = try await query(
            "record heartbeat",
            """
            WITH executor AS (
                INSERT INTO \(identifier: schema).durable_executors (executor_id, application_version, last_heartbeat)
                VALUES (\(executorID), \(applicationVersion), \(fragment: now))
                ON CONFLICT (executor_id) DO UPDATE
                    SET application_version = EXCLUDED.application_version, last_heartbeat = EXCLUDED.last_heartbeat
            ), purged AS (
                DELETE FROM \(identifier: schema).durable_executor_instances
                WHERE instance_id <> \(instanceID) AND last_heartbeat < \(fragment: now) - greatest(20 * heartbeat_interval_ms, 300000)
            ), beat AS (
                UPDATE \(identifier: schema).durable_executor_instances SET last_heartbeat = \(fragment: now)
                WHERE instance_id = \(instanceID) RETURNING 1
            )
            SELECT count(*) FROM beat
            """)
        return try (result.decodeFirst(Int.self) ?? 0) > 0
    }

    /// The executor's `PENDING` workflows that no live process holds (their owner token's first characters name
    /// no instance alive now), and none of `instanceID`'s own.
    func unownedPendingWorkflows(executorID: String, applicationVersion: String, instanceID: String) async throws
        -> [PendingWorkflow]
    {
        let result = try await query(
            "list unowned pending workflows",
            """
            SELECT ws.workflow_uuid, ws.name, ws.owner_xid FROM \(identifier: schema).workflow_status ws
            WHERE ws.status = 'PENDING' AND ws.executor_id = \(executorID) AND ws.application_version = \(applicationVersion)
              AND NOT EXISTS (
                  SELECT 1 FROM \(identifier: schema).durable_executor_instances i
                  WHERE i.instance_id = left(ws.owner_xid, \(WorkflowEngine.instanceIDLength))
                    AND (i.instance_id = \(instanceID)
                         OR i.last_heartbeat >= \(fragment: Statements.nowMilliseconds) - \(Self.liveHeartbeats) * i.heartbeat_interval_ms)
              )
            ORDER BY ws.created_at
            """)
        return try Self.pendingWorkflows(in: result)
    }

    // MARK: - Takeover of silent executors

    /// Executors of `applicationVersion` other than `executorID` whose heartbeat is older than `silence`
    /// milliseconds, the longest silent first.
    func silentExecutors(applicationVersion: String, besides executorID: String, silence: Int64) async throws
        -> [String]
    {
        try await query(
            "find silent executors",
            """
            SELECT executor_id FROM \(identifier: schema).durable_executors
            WHERE application_version = \(applicationVersion) AND executor_id <> \(executorID)
              AND last_heartbeat < \(fragment: Statements.nowMilliseconds) - \(silence)::bigint
            ORDER BY last_heartbeat
            """
        ).decode(String.self)
    }

    /// Puts a silent executor's `PENDING` workflows that came from a queue back on that queue, unowned, as DBOS's
    /// recovery re-enqueues, so they are dispatched again under the queue's limits (a taker running them at once
    /// would exceed its per-process concurrency). Returns how many.
    ///
    /// Their recorded steps stay; the claim that dispatches them counts the recovery attempt and keeps their
    /// deadline. Each row is taken only while it is still the silent executor's and `PENDING`, so a concurrent
    /// taker's claim and this never both win a row. If the executor was alive after all (paused), its run finds the
    /// workflow gone at its next write, and should its own dispatcher take the workflow back, the engine retires the
    /// old run first (`clearStaleLocalRun`). One NOTIFY per queue wakes the dispatchers of every process.
    func requeueQueuedWorkflows(of executorID: String, applicationVersion: String) async throws -> Int {
        let result = try await query(
            "requeue a silent executor's queued workflows",
            """
            WITH requeued AS (
                UPDATE \(identifier: schema).workflow_status
                SET status = 'ENQUEUED', owner_xid = NULL, started_at_epoch_ms = NULL, updated_at = \(fragment: Statements.nowMilliseconds)
                WHERE executor_id = \(executorID) AND application_version = \(applicationVersion) AND status = 'PENDING'
                  AND queue_name IS NOT NULL
                RETURNING queue_name
            ), notified AS (
                SELECT pg_notify(\(SystemDatabase.queueWakeupChannel), queue_name) FROM (SELECT DISTINCT queue_name FROM requeued) AS queues
            )
            SELECT (SELECT count(*) FROM requeued), (SELECT count(*) FROM notified)
            """)
        return try result.decodeFirst(Int.self, Int.self)?.0 ?? 0
    }

    /// Forgets a silent executor, only while it is still silent (it may have come back) and holds no `PENDING`
    /// workflow (it may have claimed some after the takeover looked, if it was only paused: forgetting it then would
    /// leave them to nobody should it die before its next heartbeat).
    func forgetSilentExecutor(_ executorID: String, silence: Int64, applicationVersion: String) async throws {
        _ = try await query(
            "forget silent executor",
            """
            DELETE FROM \(identifier: schema).durable_executors e
            WHERE e.executor_id = \(executorID) AND e.last_heartbeat < \(fragment: Statements.nowMilliseconds) - \(silence)::bigint
              AND NOT EXISTS (
                  SELECT 1 FROM \(identifier: schema).workflow_status ws
                  WHERE ws.executor_id = \(executorID) AND ws.application_version = \(applicationVersion) AND ws.status = 'PENDING'
              )
            """)
    }
}
