import Foundation

/// The headline figures of every suite, gathered by `durable-bench all` into one table with their ratios and the
/// project's targets. Each suite fills in what it measured; a missing DBOS figure leaves its cells empty.
struct Summary {
    struct Row {
        var figure: String
        var ours: String
        var dbos: String = ""
        var versusDBOS: String = ""
        var versusFloor: String = ""
        var target: String = ""
    }

    var rows: [Row] = []

    mutating func add(_ row: Row) { rows.append(row) }

    func print() {
        Swift.print("| figure | ours | DBOS Python 3.4.0 | ours / DBOS | ours / floor | target |")
        Swift.print("|---|---:|---:|---:|---:|---|")
        for row in rows {
            Swift.print(
                "| \(row.figure) | \(row.ours) | \(row.dbos) | \(row.versusDBOS) | \(row.versusFloor) | \(row.target) |"
            )
        }
    }

    static func number(_ value: Double, _ digits: Int = 2) -> String { String(format: "%.\(digits)f", value) }
    static func ratio(_ value: Double) -> String { String(format: "%.2f×", value) }
    static func percent(_ value: Double) -> String { String(format: "%.0f %%", value * 100) }
}
