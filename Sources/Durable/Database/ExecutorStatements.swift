/// SQL for the takeover of dead executors' work (our own table, migration 0002).
struct ExecutorStatements: Sendable {
    let silentExecutors: String
    let forget: String
    let requeueQueued: String

    init(schema s: String) {
        let now = Statements.nowMilliseconds

        // $1 version, $2 this executor, $3 silence limit in ms
        silentExecutors = """
            SELECT executor_id FROM \(s).durable_executors
            WHERE application_version = $1 AND executor_id <> $2 AND last_heartbeat < \(now) - $3::bigint
            ORDER BY last_heartbeat
            """

        // $1 executor, $2 version: its PENDING workflows that came from a queue go back to that queue, unowned,
        // as DBOS's recovery re-enqueues, so they are dispatched again under the queue's limits (a taker running
        // them at once would exceed its per-process concurrency). Their recorded steps stay; the claim that
        // dispatches them counts the recovery attempt and keeps their deadline. Each row is taken only while it is
        // still the silent executor's and PENDING, so a concurrent taker's claim and this never both win a row.
        // If the executor was alive after all (paused), its run finds the workflow gone at its next write, and
        // should its own dispatcher take the workflow back, the engine retires the old run first
        // (`clearStaleLocalRun`). One NOTIFY per queue wakes the dispatchers of every process.
        requeueQueued = """
            WITH requeued AS (
                UPDATE \(s).workflow_status
                SET status = 'ENQUEUED', owner_xid = NULL, started_at_epoch_ms = NULL, updated_at = \(now)
                WHERE executor_id = $1 AND application_version = $2 AND status = 'PENDING' AND queue_name IS NOT NULL
                RETURNING queue_name
            ), notified AS (
                SELECT pg_notify('\(QueueStatements.wakeupChannel)', queue_name) FROM (SELECT DISTINCT queue_name FROM requeued) AS queues
            )
            SELECT (SELECT count(*) FROM requeued), (SELECT count(*) FROM notified)
            """

        // $1 executor, $2 silence limit in ms, $3 version: only while it is still silent (it may have come back)
        // and holds no PENDING workflow (it may have claimed some after the takeover looked, if it was only
        // paused: forgetting it then would leave them to nobody should it die before its next heartbeat).
        forget = """
            DELETE FROM \(s).durable_executors e
            WHERE e.executor_id = $1 AND e.last_heartbeat < \(now) - $2::bigint
              AND NOT EXISTS (
                  SELECT 1 FROM \(s).workflow_status ws
                  WHERE ws.executor_id = $1 AND ws.application_version = $3 AND ws.status = 'PENDING'
              )
            """
    }
}
