import Foundation

/// A cron expression with an optional seconds field: `sec min hour day-of-month month day-of-week`, or the
/// classic five fields (seconds then default to 0).
///
/// Each field takes `*`, a number, a range `a-b`, a step `*/n` or `a-b/n`, and lists of those separated by
/// commas. Months and weekdays also take names (`JAN`, `MON`); Sunday is 0 or 7. When both day fields are
/// restricted, a day matches if either does, as in Vixie cron.
public struct CronExpression: Sendable, Hashable, CustomStringConvertible {
    /// The expression as written.
    public let description: String
    let seconds: Set<Int>
    let minutes: Set<Int>
    let hours: Set<Int>
    let daysOfMonth: Set<Int>
    let months: Set<Int>
    let daysOfWeek: Set<Int>
    let dayOfMonthRestricted: Bool
    let dayOfWeekRestricted: Bool

    /// Parses an expression.
    /// - Throws: ``DurableError/Code/invalidArgument`` naming the field that is wrong.
    public init(_ text: String) throws {
        var fields = text.split(whereSeparator: \.isWhitespace).map(String.init)
        guard fields.count == 5 || fields.count == 6 else {
            throw DurableError(
                .invalidArgument,
                "cron expression '\(text)' has \(fields.count) fields; expected 5 (min hour dom month dow) or 6 (sec min hour dom month dow)"
            )
        }
        if fields.count == 5 { fields.insert("0", at: 0) }
        func parse(_ index: Int, _ name: String, _ range: ClosedRange<Int>, names: [String] = []) throws -> Set<Int> {
            try Self.parseField(fields[index], name: name, range: range, names: names, expression: text)
        }
        description = text
        seconds = try parse(0, "seconds", 0...59)
        minutes = try parse(1, "minutes", 0...59)
        hours = try parse(2, "hours", 0...23)
        daysOfMonth = try parse(3, "day of month", 1...31)
        months = try parse(
            4, "month", 1...12,
            names: ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"])
        let weekdays = try parse(5, "day of week", 0...7, names: ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])
        daysOfWeek = Set(weekdays.map { $0 % 7 })
        dayOfMonthRestricted = fields[3] != "*" && fields[3] != "?"
        dayOfWeekRestricted = fields[5] != "*" && fields[5] != "?"
    }

    /// The first time strictly after `date` that matches, in `timeZone`; nil if none within eight years.
    public func nextFire(after date: Date, in timeZone: TimeZone) -> Date? {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        var candidate =
            calendar.date(bySetting: .nanosecond, value: 0, of: date.addingTimeInterval(1))
            ?? date.addingTimeInterval(1)
        candidate = Date(timeIntervalSince1970: candidate.timeIntervalSince1970.rounded(.down))
        let limit = date.addingTimeInterval(8 * 366 * 86_400)
        while candidate < limit {
            let parts = calendar.dateComponents(
                [.year, .month, .day, .hour, .minute, .second, .weekday], from: candidate)
            guard let month = parts.month, let day = parts.day, let hour = parts.hour, let minute = parts.minute,
                let second = parts.second, let weekday = parts.weekday
            else { return nil }
            if !months.contains(month) {
                candidate = startOfNext(.month, after: candidate, calendar) ?? limit
                continue
            }
            if !matchesDay(day: day, weekday: weekday - 1) {
                candidate = startOfNext(.day, after: candidate, calendar) ?? limit
                continue
            }
            if !hours.contains(hour) {
                candidate = startOfNext(.hour, after: candidate, calendar) ?? limit
                continue
            }
            if !minutes.contains(minute) {
                candidate = startOfNext(.minute, after: candidate, calendar) ?? limit
                continue
            }
            if !seconds.contains(second) {
                candidate = candidate.addingTimeInterval(1)
                continue
            }
            return candidate
        }
        return nil
    }

    private func matchesDay(day: Int, weekday: Int) -> Bool {
        switch (dayOfMonthRestricted, dayOfWeekRestricted) {
        case (true, true): return daysOfMonth.contains(day) || daysOfWeek.contains(weekday)
        case (true, false): return daysOfMonth.contains(day)
        case (false, true): return daysOfWeek.contains(weekday)
        case (false, false): return true
        }
    }

    private func startOfNext(_ unit: Calendar.Component, after date: Date, _ calendar: Calendar) -> Date? {
        guard let interval = calendar.dateInterval(of: unit, for: date) else { return nil }
        return interval.end
    }

    private static func parseField(
        _ field: String, name: String, range: ClosedRange<Int>, names: [String], expression: String
    ) throws -> Set<Int> {
        func invalid(_ why: String) -> DurableError {
            DurableError(.invalidArgument, "cron expression '\(expression)': \(name) field '\(field)' \(why)")
        }
        func value(_ text: Substring) throws -> Int {
            if let number = Int(text) { return number }
            if let index = names.firstIndex(of: text.uppercased()) { return index + (range.lowerBound == 1 ? 1 : 0) }
            throw invalid("is not a number")
        }
        var result: Set<Int> = []
        for part in field.split(separator: ",", omittingEmptySubsequences: false) {
            guard !part.isEmpty else { throw invalid("has an empty list item") }
            let pieces = part.split(separator: "/", omittingEmptySubsequences: false)
            guard pieces.count <= 2 else { throw invalid("has more than one '/'") }
            var step = 1
            if pieces.count == 2 {
                guard let parsed = Int(pieces[1]), parsed > 0 else {
                    throw invalid("has a step that is not a positive number")
                }
                step = parsed
            }
            let base = pieces[0]
            var low: Int
            var high: Int
            if base == "*" || base == "?" {
                (low, high) = (range.lowerBound, range.upperBound)
            } else if let dash = base.firstIndex(of: "-") {
                low = try value(base[..<dash])
                high = try value(base[base.index(after: dash)...])
            } else {
                low = try value(base)
                high = pieces.count == 2 ? range.upperBound : low
            }
            guard range.contains(low), range.contains(high) else {
                throw invalid("is outside \(range.lowerBound)-\(range.upperBound)")
            }
            guard low <= high else { throw invalid("has a range that runs backwards") }
            result.formUnion(stride(from: low, through: high, by: step))
        }
        return result
    }
}
