import Foundation

/// The input of a scheduled workflow: which tick it serves.
public struct ScheduledRun: Codable, Sendable, Equatable {
    /// The tick's time (not when it actually started).
    public var scheduledAt: Date
    /// The schedule's name.
    public var scheduleName: String
}

/// What a schedule does with ticks that passed while no process was running.
public enum MissedTicks: Sendable {
    /// Forget them: the next tick after the start is the first.
    case skip
    /// Run each of them (up to 1,000) from the last one that fired.
    case backfill
}

/// A registered schedule: a cron expression that starts a workflow once per tick, across all processes.
struct WorkflowSchedule: Sendable {
    var name: String
    var workflowName: String
    var cron: CronExpression
    var timeZone: TimeZone
    var missedTicks: MissedTicks

    /// The tick's workflow ID, the same in every process, so each tick runs once: `sched-<name>-<time>`.
    func workflowID(for tick: Date) -> String {
        "sched-\(name)-\(PortableJSON.formatDate(tick))"
    }
}

extension DurableRuntime {
    /// Runs `workflow` on a cron schedule. Every process may register the same schedule: each tick starts the
    /// workflow exactly once (its ID is derived from the schedule and the tick), on DBOS's internal queue.
    ///
    /// - Parameters:
    ///   - workflow: the registered workflow to start at each tick; its input is the tick (``ScheduledRun``).
    ///   - name: the schedule's durable name (also recorded in `workflow_schedules`).
    ///   - cron: `sec min hour dom month dow`, or the classic five fields.
    ///   - timeZone: the zone the expression is read in.
    ///   - missedTicks: skip or back-fill ticks that passed while nothing ran.
    /// - Throws: ``DurableError/Code/invalidArgument`` for an invalid expression or an empty name.
    public func schedule<W: Workflow>(
        _ workflow: W.Type, name: String, cron: String, timeZone: TimeZone = .gmt, missedTicks: MissedTicks = .skip
    ) throws where W.Input == ScheduledRun {
        if name.isEmpty { throw DurableError(.invalidArgument, "a schedule needs a non-empty name") }
        try ArgumentChecks.text(name, "the schedule name")
        let expression = try CronExpression(cron)
        addSchedule(
            WorkflowSchedule(
                name: name, workflowName: W.name, cron: expression, timeZone: timeZone, missedTicks: missedTicks))
    }
}
