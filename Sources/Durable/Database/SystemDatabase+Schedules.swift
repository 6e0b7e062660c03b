import LibPQ

/// Schedules, in DBOS's `workflow_schedules` table. Each statement sits in the method that runs it.
extension SystemDatabase {
    /// Records a schedule (or updates the one of that name), active, firing onto `queue`.
    func registerSchedule(_ schedule: WorkflowSchedule, queue: String) async throws {
        let backfill = schedule.missedTicks == .backfill
        _ = try await query(
            "register schedule",
            """
            INSERT INTO \(identifier: schema).workflow_schedules
                (schedule_id, schedule_name, workflow_name, schedule, status, context, automatic_backfill, cron_timezone, queue_name)
            VALUES (\(schedule.name), \(schedule.name), \(schedule.workflowName), \(schedule.cron.description), 'ACTIVE', '{}',
                    \(backfill)::boolean, \(schedule.timeZone.identifier), \(queue))
            ON CONFLICT (schedule_name) DO UPDATE SET workflow_name = EXCLUDED.workflow_name, schedule = EXCLUDED.schedule,
                automatic_backfill = EXCLUDED.automatic_backfill, cron_timezone = EXCLUDED.cron_timezone,
                queue_name = EXCLUDED.queue_name
            """)
    }

    /// The last tick the schedule fired, as recorded (RFC 3339 text), or nil.
    func lastFiredTick(of scheduleName: String) async throws -> String? {
        try await query(
            "read schedule",
            """
            SELECT last_fired_at FROM \(identifier: schema).workflow_schedules WHERE schedule_name = \(scheduleName)
            """
        ).decodeFirst(String?.self) ?? nil
    }

    /// Records that the schedule fired `tick` (RFC 3339, UTC, fixed width: text order is time order), unless a
    /// later tick is already recorded.
    func recordFiredTick(of scheduleName: String, tick: String) async throws {
        _ = try await query(
            "record schedule tick",
            """
            UPDATE \(identifier: schema).workflow_schedules SET last_fired_at = \(tick)
            WHERE schedule_name = \(scheduleName) AND (last_fired_at IS NULL OR last_fired_at < \(tick))
            """)
    }
}
