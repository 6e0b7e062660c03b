import Foundation
import Synchronization

/// Workflows whose run ended at a long durable sleep, waiting in memory only as a timer entry.
///
/// A sleeping Swift task keeps its whole chain of async frames alive, about ten kilobytes a workflow; a parked
/// one keeps this entry. When an entry comes due — its wake-up time, or its deadline if that is earlier — the
/// engine checks the workflow is still this run's and launches it again; the replay reaches the sleep, finds
/// its checkpointed wake-up time passed, and goes on.
final class ParkedRuns: Sendable {
    /// What the engine needs to launch the workflow again, with the load it still counts against its queue.
    struct Entry: Sendable {
        var id: String
        var registration: WorkflowRegistration
        var input: String
        var token: String
        var deadline: Int64?
        var queue: String?
        var partitionKey: String?
        /// When the sleep ends, in epoch seconds.
        var wakeTime: Double

        /// When the entry comes due, in epoch seconds: at the wake-up time, or at the deadline if sooner.
        var dueTime: Double { min(wakeTime, deadline.map { Double($0) / 1000 } ?? .infinity) }
    }

    private struct State {
        var entries: [String: Entry] = [:]
        /// Entries handed to the engine and not yet launched again: still removable by a cancel or a resume,
        /// which the engine checks just before launching (``finishWaking(_:)``).
        var waking: [String: Entry] = [:]
        var timers = TimerHeap()
        /// The wait of the loop, fired when an entry earlier than everything else arrives.
        var ticket: WakeTicket?
    }

    /// The longest the loop waits without looking, so a clock change cannot strand an entry.
    private static let longestWait = Duration.seconds(60)

    private let state = Mutex(State())
    private let loop = BackgroundLoop()

    var count: Int { state.withLock { $0.entries.count } }

    /// Starts handing due entries to `wake`, in batches.
    func start(_ wake: @escaping @Sendable ([Entry]) async -> Void) {
        loop.start { [self] in
            while !Task.isCancelled {
                let due = takeDue(now: Date().timeIntervalSince1970)
                if !due.isEmpty { await wake(due) }
                let ticket = WakeTicket(key: "parked")
                let next = state.withLock { state -> Double? in
                    state.ticket = ticket
                    return state.timers.earliest?.time
                }
                guard let next else {
                    await ticket.wait(timeout: Self.longestWait)
                    continue
                }
                let remaining = next - Date().timeIntervalSince1970
                if remaining > 0 {
                    await ticket.wait(
                        timeout: min(.milliseconds(Int64((remaining * 1000).rounded(.up))), Self.longestWait))
                }
            }
        }
    }

    func stop() async {
        await loop.stop()
    }

    /// Parks a run; replaces an earlier entry of the same workflow, which it returns.
    @discardableResult
    func add(_ entry: Entry) -> Entry? {
        let (ticket, replaced) = state.withLock { state -> (WakeTicket?, Entry?) in
            let replaced = state.entries.updateValue(entry, forKey: entry.id)
            let earliest = state.timers.earliest?.time
            state.timers.insert(.init(time: entry.dueTime, key: entry.id))
            // Only an entry due before everything else changes how long the loop must wait.
            return (earliest.map { entry.dueTime < $0 } ?? true ? state.ticket : nil, replaced)
        }
        ticket?.fire()
        return replaced
    }

    /// The workflow and owner token of every parked entry that holds a queue slot (not those being woken).
    var queuedTokens: [(id: String, token: String)] {
        state.withLock { $0.entries.values.filter { $0.queue != nil }.map { (id: $0.id, token: $0.token) } }
    }

    /// Takes a workflow's entry out (it was cancelled, resumed or is being shut down), waiting or waking; nil if
    /// it is not parked.
    func remove(_ id: String) -> Entry? {
        remove(id, ifOwnedUnder: { _ in true })
    }

    /// Takes a workflow's entry out, waiting or waking, only if its owner token passes `ownedUnder`; nil if it is
    /// not parked or its token does not pass.
    func remove(_ id: String, ifOwnedUnder ownedUnder: (String) -> Bool) -> Entry? {
        state.withLock { state in
            guard let entry = state.entries[id] ?? state.waking[id], ownedUnder(entry.token) else { return nil }
            state.entries.removeValue(forKey: id)
            state.waking.removeValue(forKey: id)
            return entry
        }
    }

    /// The owner token of a workflow's entry, waiting or waking; nil if it is not parked.
    func token(of id: String) -> String? {
        state.withLock { ($0.entries[id] ?? $0.waking[id])?.token }
    }

    /// Ends the waking of an entry the engine is about to launch; false when it was removed meanwhile (then
    /// whoever removed it released its load, and it must not be launched).
    func finishWaking(_ id: String) -> Bool {
        state.withLock { $0.waking.removeValue(forKey: id) != nil }
    }

    /// Takes every entry out.
    func removeAll() -> [Entry] {
        state.withLock { state in
            defer {
                state.entries.removeAll()
                state.waking.removeAll()
                state.timers.removeAll()
            }
            return Array(state.entries.values) + Array(state.waking.values)
        }
    }

    /// Takes out the entries due at `now` (at most one batch), skipping timers whose entry was removed or replaced.
    private func takeDue(now: Double, batch: Int = 500) -> [Entry] {
        state.withLock { state in
            var due: [Entry] = []
            while due.count < batch, let timer = state.timers.earliest, timer.time <= now {
                _ = state.timers.popEarliest()
                guard let entry = state.entries[timer.key], entry.dueTime == timer.time else { continue }
                state.entries.removeValue(forKey: timer.key)
                state.waking[timer.key] = entry
                due.append(entry)
            }
            return due
        }
    }
}
