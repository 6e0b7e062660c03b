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
    /// What a claim under one token took, for when its connection broke and the commit's fate is unknown.
    let claimedUnder: String
    let registerQueue: String
    /// The same three, limited to one partition ($9 for the claim, $3 for the counts).
    let partitionRunningCount: String
    let partitionRecentStarts: String
    let partitionClaim: String
    let activePartitions: String
    let activePartitionsAfter: String
    let unservableQueued: String

    init(schema s: String) {
        let now = Statements.nowMilliseconds

        // $1 id, $2 name, $3 queue, $4 input, $5 priority, $6 dedup id, $7 delay-until (epoch ms), $8 timeout ms,
        // $9 creator token, $10 version, $11 partition key. Like DBOS, the row is ENQUEUED (or DELAYED) with no owner yet.
        enqueue = """
            WITH enqueued AS (
                INSERT INTO \(s).workflow_status
                    (workflow_uuid, status, name, queue_name, priority, deduplication_id, delay_until_epoch_ms,
                     workflow_timeout_ms, recovery_attempts, serialization, creator_xid, application_version,
                     queue_partition_key)
                VALUES ($1, CASE WHEN $7::bigint IS NULL THEN 'ENQUEUED' ELSE 'DELAYED' END, $2, $3, $5::int4, $6,
                        $7::bigint, $8::bigint, 0, 'portable_json', $9, $10, $11)
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

        // $1 queue [, $2 partition]. Separate statements per scope rather than "$2 IS NULL OR …", so each keeps
        // a plan that uses its index.
        func running(partition: String) -> String {
            "SELECT count(*) FROM \(s).workflow_status WHERE queue_name = $1 AND status = 'PENDING'\(partition)"
        }
        runningCount = running(partition: "")
        partitionRunningCount = running(partition: " AND queue_partition_key = $2")

        // $1 queue, $2 period in ms [, $3 partition]: starts inside the rate-limit window, as DBOS counts them.
        func recent(partition: String) -> String {
            """
            SELECT count(*) FROM \(s).workflow_status
            WHERE queue_name = $1 AND rate_limited AND status NOT IN ('ENQUEUED', 'DELAYED')
              AND started_at_epoch_ms > \(now) - $2::bigint\(partition)
            """
        }
        recentStarts = recent(partition: "")
        partitionRecentStarts = recent(partition: " AND queue_partition_key = $3")

        // $1 queues, $2 registered names, $3 version, $4 partitioned queues: waiting workflows this process
        // serves the queue of yet never claims, because no process here registers the name (an outside client
        // enqueued it) or because it has no partition key on a partitioned queue (DBOS's clients allow that; the
        // dispatch, as DBOS's, only takes workflows of some partition). A few, for a warning; the last column
        // says whether the name is known (so the missing key is the reason).
        unservableQueued = """
            SELECT workflow_uuid, name, queue_name, coalesce(name = ANY($2::text[]), false) FROM \(s).workflow_status
            WHERE status = 'ENQUEUED' AND queue_name = ANY($1::text[])
              AND (name IS NULL OR NOT (name = ANY($2::text[]))
                   OR (queue_partition_key IS NULL AND queue_name = ANY($4::text[])))
              AND (application_version = $3 OR application_version IS NULL)
            LIMIT 20
            """

        // $1 queue, $2 how many [, $3 after this key]: partitions with ENQUEUED work, in key order. A loose index
        // scan (one probe per partition, on the partition dequeue index), so the cost follows the number of
        // partitions, not the backlog. Two statements, from the first key and after a cursor, so the cursor
        // bounds the index scan in a generic plan too.
        func partitions(after: String) -> String {
            """
            WITH RECURSIVE partitions(key) AS (
                SELECT min(queue_partition_key) FROM \(s).workflow_status
                WHERE queue_name = $1 AND status = 'ENQUEUED' AND queue_partition_key IS NOT NULL\(after)
                UNION ALL
                SELECT (SELECT min(queue_partition_key) FROM \(s).workflow_status
                        WHERE queue_name = $1 AND status = 'ENQUEUED' AND queue_partition_key > p.key)
                FROM partitions p WHERE p.key IS NOT NULL
            )
            SELECT key FROM partitions WHERE key IS NOT NULL LIMIT $2
            """
        }
        activePartitions = partitions(after: "")
        activePartitionsAfter = partitions(after: " AND queue_partition_key > $3")

        // $1 queue, $2 how many, $3 token, $4 executor, $5 version, $6 rate limited, $7 registered names,
        // $8 payload limit [, $9 partition]. Lower priority first, then oldest; rows locked by another claimant are
        // skipped. A claim that takes anything also records this executor's heartbeat, in the same transaction: a
        // process that looked silent (paused, or cut off by a database restart) may have been taken over and its
        // heartbeat row forgotten; if it then claimed work and was killed before its next heartbeat, no process
        // would ever look for that work again (the torture run once left 19 workflows PENDING so).
        func claimStatement(partition: String) -> String {
            """
            WITH candidates AS (
                SELECT workflow_uuid FROM \(s).workflow_status
                WHERE queue_name = $1 AND status = 'ENQUEUED'
                  AND (application_version = $5 OR application_version IS NULL)
                  AND name = ANY($7::text[])\(partition)
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
                RETURNING ws.workflow_uuid, ws.name, ws.recovery_attempts, ws.inputs, ws.workflow_deadline_epoch_ms,
                          ws.queue_partition_key
            ), alive AS (
                INSERT INTO \(s).durable_executors (executor_id, application_version, last_heartbeat)
                SELECT $4, $5, \(now) WHERE EXISTS (SELECT 1 FROM claimed)
                ON CONFLICT (executor_id) DO UPDATE
                    SET application_version = EXCLUDED.application_version, last_heartbeat = EXCLUDED.last_heartbeat
            )
            SELECT c.workflow_uuid, c.name, c.recovery_attempts,
                   CASE WHEN octet_length(COALESCE(i.inputs, c.inputs)) <= $8 THEN COALESCE(i.inputs, c.inputs) END,
                   octet_length(COALESCE(i.inputs, c.inputs)), c.workflow_deadline_epoch_ms, c.queue_partition_key
            FROM claimed c LEFT JOIN \(s).workflow_input i ON i.workflow_uuid = c.workflow_uuid
            """
        }
        claim = claimStatement(partition: "")
        partitionClaim = claimStatement(partition: " AND queue_partition_key = $9")

        // $1 token, $2 payload limit, $3 queue. The claim's columns, for the rows it left PENDING under its token.
        claimedUnder = """
            SELECT ws.workflow_uuid, ws.name, ws.recovery_attempts,
                   CASE WHEN octet_length(COALESCE(i.inputs, ws.inputs)) <= $2 THEN COALESCE(i.inputs, ws.inputs) END,
                   octet_length(COALESCE(i.inputs, ws.inputs)), ws.workflow_deadline_epoch_ms, ws.queue_partition_key
            FROM \(s).workflow_status ws LEFT JOIN \(s).workflow_input i ON i.workflow_uuid = ws.workflow_uuid
            WHERE ws.owner_xid = $1 AND ws.status = 'PENDING' AND ws.queue_name = $3
            """

        // $1 name, $2 concurrency, $3 worker concurrency, $4 rate limit, $5 period (s), $6 partitioned,
        // $7 partition concurrency, $8 partition worker concurrency, $9 partition rate limit, $10 its period (s).
        // So DBOS's tools list it with its limits.
        registerQueue = """
            INSERT INTO \(s).queues (name, concurrency, worker_concurrency, rate_limit_max, rate_limit_period_sec,
                partition_queue, partition_concurrency, partition_worker_concurrency, partition_rate_limit_max,
                partition_rate_limit_period_sec)
            VALUES ($1, $2::int4, $3::int4, $4::int4, $5::float8, $6::boolean, $7::int4, $8::int4, $9::int4, $10::float8)
            ON CONFLICT (name) DO UPDATE SET concurrency = EXCLUDED.concurrency,
                worker_concurrency = EXCLUDED.worker_concurrency, rate_limit_max = EXCLUDED.rate_limit_max,
                rate_limit_period_sec = EXCLUDED.rate_limit_period_sec, partition_queue = EXCLUDED.partition_queue,
                partition_concurrency = EXCLUDED.partition_concurrency,
                partition_worker_concurrency = EXCLUDED.partition_worker_concurrency,
                partition_rate_limit_max = EXCLUDED.partition_rate_limit_max,
                partition_rate_limit_period_sec = EXCLUDED.partition_rate_limit_period_sec, updated_at = \(now)
            """
    }
}
