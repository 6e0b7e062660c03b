/// SQL for schedules, in DBOS's `workflow_schedules` table.
struct ScheduleStatements: Sendable {
    let register: String
    let lastFired: String
    let recordFired: String

    init(schema s: String) {
        // $1 name, $2 workflow, $3 cron, $4 backfill, $5 time zone, $6 queue
        register = """
            INSERT INTO \(s).workflow_schedules
                (schedule_id, schedule_name, workflow_name, schedule, status, context, automatic_backfill, cron_timezone, queue_name)
            VALUES ($1, $1, $2, $3, 'ACTIVE', '{}', $4::boolean, $5, $6)
            ON CONFLICT (schedule_name) DO UPDATE SET workflow_name = EXCLUDED.workflow_name, schedule = EXCLUDED.schedule,
                automatic_backfill = EXCLUDED.automatic_backfill, cron_timezone = EXCLUDED.cron_timezone,
                queue_name = EXCLUDED.queue_name
            """

        // $1 name
        lastFired = """
            SELECT last_fired_at FROM \(s).workflow_schedules WHERE schedule_name = $1
            """

        // $1 name, $2 tick (RFC 3339, UTC, fixed width: text order is time order)
        recordFired = """
            UPDATE \(s).workflow_schedules SET last_fired_at = $2
            WHERE schedule_name = $1 AND (last_fired_at IS NULL OR last_fired_at < $2)
            """
    }
}
