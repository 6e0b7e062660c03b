import LibPQ

/// SQL for the processes that hold executor IDs (`durable_executor_instances`, migration 0003), each statement
/// beside the method that runs it below.
struct InstanceStatements: Sendable {
    let register: String
    let holders: String
    let removeIfUnchanged: String
    let remove: String
    let heartbeat: String
    let unownedPending: String

    /// A process is presumed alive while its last heartbeat is younger than this many of its own heartbeat
    /// intervals: one late heartbeat (a busy machine) is not death.
    static let liveHeartbeats = 3

    init(schema s: String) {
        let now = Statements.nowMilliseconds
        let live = "i.last_heartbeat >= \(now) - \(Self.liveHeartbeats) * i.heartbeat_interval_ms"

        // $1 instance, $2 executor, $3 version, $4 host, $5 process ID, $6 process start time, $7 heartbeat ms
        register = """
            INSERT INTO \(s).durable_executor_instances
                (instance_id, executor_id, application_version, host, process_id, process_started, heartbeat_interval_ms,
                 started_at, last_heartbeat)
            VALUES ($1, $2, $3, $4, $5::integer, $6, $7::bigint, \(now), \(now))
            ON CONFLICT (instance_id) DO UPDATE
                SET last_heartbeat = EXCLUDED.last_heartbeat, application_version = EXCLUDED.application_version
            """

        // $1 executor, $2 this instance: the other processes holding the executor ID, how long each has been
        // silent, and whether each registered before this one (the earlier of two holders keeps the ID).
        holders = """
            SELECT i.instance_id, i.host, i.process_id, i.process_started, i.last_heartbeat,
                   \(now) - i.last_heartbeat, i.heartbeat_interval_ms,
                   COALESCE((i.started_at, i.instance_id) < (
                       SELECT me.started_at, me.instance_id FROM \(s).durable_executor_instances me WHERE me.instance_id = $2
                   ), true)
            FROM \(s).durable_executor_instances i
            WHERE i.executor_id = $1 AND i.instance_id <> $2
            """

        // $1 instance, $2 its heartbeat as seen: a process judged dead is forgotten only if it has not beaten since.
        removeIfUnchanged = """
            DELETE FROM \(s).durable_executor_instances WHERE instance_id = $1 AND last_heartbeat = $2::bigint
            """

        // $1 instance
        remove = """
            DELETE FROM \(s).durable_executor_instances WHERE instance_id = $1
            """

        // $1 executor, $2 version, $3 instance. One round trip: the executor's heartbeat (which takeover reads),
        // this process's own, and the housekeeping of processes silent for twenty heartbeats (at least five
        // minutes), which died without a graceful shutdown. Returns 0 when this process's row is gone (another
        // process judged it dead while it was unresponsive).
        heartbeat = """
            WITH executor AS (
                INSERT INTO \(s).durable_executors (executor_id, application_version, last_heartbeat)
                VALUES ($1, $2, \(now))
                ON CONFLICT (executor_id) DO UPDATE
                    SET application_version = EXCLUDED.application_version, last_heartbeat = EXCLUDED.last_heartbeat
            ), purged AS (
                DELETE FROM \(s).durable_executor_instances
                WHERE instance_id <> $3 AND last_heartbeat < \(now) - greatest(20 * heartbeat_interval_ms, 300000)
            ), beat AS (
                UPDATE \(s).durable_executor_instances SET last_heartbeat = \(now) WHERE instance_id = $3 RETURNING 1
            )
            SELECT count(*) FROM beat
            """

        // $1 executor, $2 version, $3 this instance: the executor's PENDING workflows that no live process holds
        // (their owner token's first characters name no instance alive now), and none of this instance's own.
        unownedPending = """
            SELECT ws.workflow_uuid, ws.name, ws.owner_xid FROM \(s).workflow_status ws
            WHERE ws.status = 'PENDING' AND ws.executor_id = $1 AND ws.application_version = $2
              AND NOT EXISTS (
                  SELECT 1 FROM \(s).durable_executor_instances i
                  WHERE i.instance_id = left(ws.owner_xid, \(WorkflowEngine.instanceIDLength)) AND (i.instance_id = $3 OR \(live))
              )
            ORDER BY ws.created_at
            """
    }
}

extension SystemDatabase {
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
    func registerInstance(_ id: String, executorID: String, applicationVersion: String, process: ProcessIdentity, heartbeatInterval: Int64) async throws {
        _ = try await query("register this process", instances.register, [
            id, executorID, applicationVersion, process.host, Int(process.processID), process.started, heartbeatInterval,
        ])
    }

    /// The other processes recorded as holding `executorID`.
    func executorHolders(_ executorID: String, besides instanceID: String) async throws -> [ExecutorHolder] {
        let result = try await query("list the processes holding this executor ID", instances.holders, [executorID, instanceID])
        return result.rows.compactMap { row in
            guard let id = row.string(0), let host = row.string(1), let pid = row.int(2), let beat = row.int64(4) else { return nil }
            return ExecutorHolder(
                instanceID: id, process: ProcessIdentity(host: host, processID: Int32(truncatingIfNeeded: pid), started: row.string(3)),
                lastHeartbeat: beat, silentMilliseconds: row.int64(5) ?? 0, heartbeatIntervalMilliseconds: row.int64(6) ?? 0,
                isEarlier: row.bool(7) ?? true
            )
        }
    }

    /// Forgets a process judged dead, unless it has recorded a heartbeat since it was seen.
    func forgetInstance(_ holder: ExecutorHolder) async throws {
        _ = try await query("forget a dead process", instances.removeIfUnchanged, [holder.instanceID, holder.lastHeartbeat])
    }

    /// Removes this process's own row (graceful shutdown). One attempt, not retried through an outage: shutdown
    /// must not wait for the database; a row left behind only delays the next launch under the same executor ID
    /// on another host by a few heartbeats (on this host, the process is seen to be gone).
    func removeInstance(_ id: String) async throws {
        _ = try await pool.withConnection { try await $0.query(instances.remove, [id]) }
    }

    /// Records the heartbeat of the executor and of this process. Returns false when this process's row was gone.
    func recordHeartbeat(executorID: String, applicationVersion: String, instanceID: String) async throws -> Bool {
        let result = try await query("record heartbeat", instances.heartbeat, [executorID, applicationVersion, instanceID])
        return (result.first?.int(0) ?? 0) > 0
    }

    /// The executor's `PENDING` workflows whose owner is no live process and not this one.
    func unownedPendingWorkflows(executorID: String, applicationVersion: String, instanceID: String) async throws -> [PendingWorkflow] {
        let result = try await query("list unowned pending workflows", instances.unownedPending, [executorID, applicationVersion, instanceID])
        return Self.pendingWorkflows(in: result)
    }
}
