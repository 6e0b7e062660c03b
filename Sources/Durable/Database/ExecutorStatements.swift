/// SQL for executor heartbeats and the takeover of dead executors' work (our own table, migration 0002).
struct ExecutorStatements: Sendable {
    let heartbeat: String
    let silentExecutors: String
    let forget: String

    init(schema s: String) {
        let now = Statements.nowMilliseconds

        // $1 executor, $2 version
        heartbeat = """
            INSERT INTO \(s).durable_executors (executor_id, application_version, last_heartbeat)
            VALUES ($1, $2, \(now))
            ON CONFLICT (executor_id) DO UPDATE
                SET application_version = EXCLUDED.application_version, last_heartbeat = EXCLUDED.last_heartbeat
            """

        // $1 version, $2 this executor, $3 silence limit in ms
        silentExecutors = """
            SELECT executor_id FROM \(s).durable_executors
            WHERE application_version = $1 AND executor_id <> $2 AND last_heartbeat < \(now) - $3::bigint
            ORDER BY last_heartbeat
            """

        // $1 executor, $2 silence limit in ms: only while it is still silent (it may have come back).
        forget = """
            DELETE FROM \(s).durable_executors WHERE executor_id = $1 AND last_heartbeat < \(now) - $2::bigint
            """
    }
}
