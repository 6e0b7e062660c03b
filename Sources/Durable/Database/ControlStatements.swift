/// SQL for cancelling and resuming workflows, built once with the quoted schema name (see ``Statements``).
struct ControlStatements: Sendable {
    /// The channel on which cancellations are announced, so the process running the workflow stops it at once.
    static let cancellationChannel = "durable_workflow_cancelled"

    let cancel: String
    /// Like ``cancel``, only while the run that saw the deadline pass still owns the workflow.
    let timeOut: String
    let resume: String

    init(schema s: String) {
        let now = Statements.nowMilliseconds

        // $1 id. Finished workflows are left alone; the NOTIFY reaches the running process at commit.
        func cancelling(_ extraCondition: String) -> String {
            """
            WITH cancelled AS (
                UPDATE \(s).workflow_status
                SET status = 'CANCELLED', owner_xid = NULL, queue_name = NULL, deduplication_id = NULL,
                    started_at_epoch_ms = NULL, completed_at = \(now), updated_at = \(now)
                WHERE workflow_uuid = $1 AND status NOT IN ('SUCCESS', 'ERROR')\(extraCondition)
                RETURNING workflow_uuid
            ), notified AS (
                SELECT pg_notify('\(Self.cancellationChannel)', workflow_uuid) FROM cancelled
            )
            SELECT (SELECT count(*) FROM notified), (SELECT status FROM \(s).workflow_status WHERE workflow_uuid = $1)
            """
        }
        cancel = cancelling("")
        // $2 the owner token of the run whose deadline passed. A workflow cancelled and resumed meanwhile (a new
        // owner, no deadline) is not this timer's to cancel.
        timeOut = cancelling(" AND owner_xid = $2")

        // $1 id, $2 new owner token, $3 executor, $4 version, $5 payload limit.
        // Like DBOS's resume: the attempt count and deadline start afresh; this process runs it.
        resume = """
            WITH resumed AS (
                UPDATE \(s).workflow_status
                SET status = 'PENDING', owner_xid = $2, executor_id = $3, application_version = $4,
                    recovery_attempts = 1, workflow_deadline_epoch_ms = NULL, deduplication_id = NULL,
                    started_at_epoch_ms = NULL, completed_at = NULL, queue_name = NULL, updated_at = \(now)
                WHERE workflow_uuid = $1 AND status NOT IN ('SUCCESS', 'ERROR')
                RETURNING name, inputs
            )
            SELECT r.name,
                   CASE WHEN octet_length(COALESCE(i.inputs, r.inputs)) <= $5 THEN COALESCE(i.inputs, r.inputs) END,
                   octet_length(COALESCE(i.inputs, r.inputs))
            FROM resumed r LEFT JOIN \(s).workflow_input i ON i.workflow_uuid = $1
            """
    }
}
