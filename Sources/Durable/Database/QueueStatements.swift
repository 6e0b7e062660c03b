/// SQL for queues, built once with the quoted schema name (see ``Statements``).
struct QueueStatements: Sendable {
    /// Enqueues NOTIFY this channel so idle dispatchers in every process look at once.
    static let wakeupChannel = "durable_queue_wakeup"

    let enqueue: String
    let existingDeduplicated: String
    let promoteDelayed: String
    let runningCount: String
    let recentStarts: String
    let claim: String
    let registerQueue: String

    init(schema s: String) {
        let now = Statements.nowMilliseconds

        // $1 id, $2 name, $3 queue, $4 input, $5 priority, $6 dedup id, $7 delay-until (epoch ms), $8 timeout ms,
        // $9 creator token, $10 version. Like DBOS, the row is ENQUEUED (or DELAYED) with no owner yet.
        enqueue = """
            WITH enqueued AS (
                INSERT INTO \(s).workflow_status
                    (workflow_uuid, status, name, queue_name, priority, deduplication_id, delay_until_epoch_ms,
                     workflow_timeout_ms, recovery_attempts, serialization, creator_xid, application_version)
                VALUES ($1, CASE WHEN $7::bigint IS NULL THEN 'ENQUEUED' ELSE 'DELAYED' END, $2, $3, $5::int4, $6,
                        $7::bigint, $8::bigint, 0, 'portable_json', $9, $10)
                ON CONFLICT (workflow_uuid) DO NOTHING
                RETURNING workflow_uuid
            ), stored_input AS (
                INSERT INTO \(s).workflow_input (workflow_uuid, inputs)
                SELECT workflow_uuid, $4::text FROM enqueued
                ON CONFLICT (workflow_uuid) DO NOTHING
            ), notified AS (
                SELECT pg_notify('\(Self.wakeupChannel)', $3) FROM enqueued
            )
            SELECT (SELECT count(*) FROM notified), (SELECT name FROM \(s).workflow_status WHERE workflow_uuid = $1)
            """

        // $1 queue, $2 dedup id
        existingDeduplicated = """
            SELECT workflow_uuid FROM \(s).workflow_status WHERE queue_name = $1 AND deduplication_id = $2
            """

        // Delayed workflows whose time has come become ENQUEUED (any process may do it; it is idempotent).
        promoteDelayed = """
            UPDATE \(s).workflow_status SET status = 'ENQUEUED', updated_at = \(now)
            WHERE status = 'DELAYED' AND delay_until_epoch_ms <= \(now)
            RETURNING queue_name
            """

        // $1 queue
        runningCount = """
            SELECT count(*) FROM \(s).workflow_status WHERE queue_name = $1 AND status = 'PENDING'
            """

        // $1 queue, $2 period in ms: starts inside the rate-limit window, as DBOS counts them.
        recentStarts = """
            SELECT count(*) FROM \(s).workflow_status
            WHERE queue_name = $1 AND rate_limited AND status NOT IN ('ENQUEUED', 'DELAYED')
              AND started_at_epoch_ms > \(now) - $2::bigint
            """

        // $1 queue, $2 how many, $3 token, $4 executor, $5 version, $6 rate limited, $7 registered names,
        // $8 payload limit. Lower priority first, then oldest; rows locked by another claimant are skipped.
        claim = """
            WITH candidates AS (
                SELECT workflow_uuid FROM \(s).workflow_status
                WHERE queue_name = $1 AND status = 'ENQUEUED'
                  AND (application_version = $5 OR application_version IS NULL)
                  AND name = ANY($7::text[])
                ORDER BY priority, created_at
                LIMIT $2
                FOR UPDATE SKIP LOCKED
            ), claimed AS (
                UPDATE \(s).workflow_status ws
                SET status = 'PENDING', owner_xid = $3, executor_id = $4, application_version = $5,
                    started_at_epoch_ms = \(now), rate_limited = $6::boolean, recovery_attempts = ws.recovery_attempts + 1,
                    updated_at = \(now),
                    workflow_deadline_epoch_ms = CASE
                        WHEN ws.workflow_timeout_ms IS NOT NULL AND ws.workflow_deadline_epoch_ms IS NULL
                        THEN \(now) + ws.workflow_timeout_ms ELSE ws.workflow_deadline_epoch_ms END
                FROM candidates c
                WHERE ws.workflow_uuid = c.workflow_uuid
                RETURNING ws.workflow_uuid, ws.name, ws.recovery_attempts, ws.inputs, ws.workflow_deadline_epoch_ms
            )
            SELECT c.workflow_uuid, c.name, c.recovery_attempts,
                   CASE WHEN octet_length(COALESCE(i.inputs, c.inputs)) <= $8 THEN COALESCE(i.inputs, c.inputs) END,
                   octet_length(COALESCE(i.inputs, c.inputs)), c.workflow_deadline_epoch_ms
            FROM claimed c LEFT JOIN \(s).workflow_input i ON i.workflow_uuid = c.workflow_uuid
            """

        // $1 name, $2 concurrency, $3 worker concurrency, $4 rate limit, $5 period (s). So DBOS's tools list it.
        registerQueue = """
            INSERT INTO \(s).queues (name, concurrency, worker_concurrency, rate_limit_max, rate_limit_period_sec)
            VALUES ($1, $2::int4, $3::int4, $4::int4, $5::float8)
            ON CONFLICT (name) DO UPDATE SET concurrency = EXCLUDED.concurrency,
                worker_concurrency = EXCLUDED.worker_concurrency, rate_limit_max = EXCLUDED.rate_limit_max,
                rate_limit_period_sec = EXCLUDED.rate_limit_period_sec, updated_at = \(now)
            """
    }
}
