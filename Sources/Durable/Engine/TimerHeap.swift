/// A binary min-heap of (time, key) pairs: the earliest time on top. Entries are never removed from the middle;
/// the owner drops stale ones as they come to the top (see ``ParkedRuns``), which keeps every operation O(log n).
struct TimerHeap: Sendable {
    struct Timer: Sendable {
        var time: Double
        var key: String
    }

    private var timers: [Timer] = []

    var isEmpty: Bool { timers.isEmpty }
    var earliest: Timer? { timers.first }

    mutating func insert(_ timer: Timer) {
        timers.append(timer)
        var child = timers.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard timers[child].time < timers[parent].time else { break }
            timers.swapAt(child, parent)
            child = parent
        }
    }

    mutating func popEarliest() -> Timer? {
        guard !timers.isEmpty else { return nil }
        timers.swapAt(0, timers.count - 1)
        let top = timers.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var smallest = parent
            if left < timers.count, timers[left].time < timers[smallest].time { smallest = left }
            if right < timers.count, timers[right].time < timers[smallest].time { smallest = right }
            guard smallest != parent else { break }
            timers.swapAt(parent, smallest)
            parent = smallest
        }
        return top
    }

    mutating func removeAll() { timers.removeAll() }
}
