import Durable
import Foundation
import Synchronization
import TestSupport
import Testing

/// Tracks how many queued workflows run at once (across every runtime in this test process) and their order.
final class RunTracker: Sendable {
    private struct State {
        var running = 0
        var maximum = 0
        var order: [String] = []
        var starts: [Date] = []
    }
    private let state = Mutex(State())

    func begin(_ label: String) {
        state.withLock { state in
            state.running += 1
            state.maximum = max(state.maximum, state.running)
            state.order.append(label)
            state.starts.append(Date())
        }
    }
    func end() { state.withLock { $0.running -= 1 } }
    var maximum: Int { state.withLock { $0.maximum } }
    var order: [String] { state.withLock { $0.order } }
    var starts: [Date] { state.withLock { $0.starts } }
}

struct TrackedInput: Codable, Sendable {
    var tracker: String
    var label: String
    var holdMilliseconds: Int
}

/// Trackers by name, so a workflow (which only gets Codable input) can find its test's tracker.
enum Trackers {
    static let all = Mutex<[String: RunTracker]>([:])
    static func make() -> (String, RunTracker) {
        let name = UUID().uuidString
        let tracker = RunTracker()
        all.withLock { $0[name] = tracker }
        return (name, tracker)
    }
    static func get(_ name: String) -> RunTracker? { all.withLock { $0[name] } }
}

/// Marks its run in a tracker and holds the slot for a while (a durable sleep keeps it PENDING).
struct Tracked: Workflow {
    static let name = "tracked"
    func run(_ ctx: WorkflowContext, _ input: TrackedInput) async throws -> String {
        let tracker = Trackers.get(input.tracker)
        if !ctx.isReplaying { tracker?.begin(input.label) }
        try await ctx.sleep(for: .milliseconds(input.holdMilliseconds))
        tracker?.end()
        return input.label
    }
}

/// Enqueues a tracked workflow from inside a workflow and returns its result.
struct Enqueuer: Workflow {
    static let name = "enqueuer"
    func run(_ ctx: WorkflowContext, _ input: TrackedInput) async throws -> String {
        let handle = try await ctx.enqueue(Tracked.self, input, queue: "work")
        return "via " + (try await handle.result())
    }
}

@Suite("Queues")
struct QueueTests {
    static let queues = [
        WorkflowQueue("work"),
        WorkflowQueue("global-two", concurrency: 2),
        WorkflowQueue("local-one", workerConcurrency: 1),
        WorkflowQueue("rate", rateLimit: .init(limit: 2, period: .seconds(1))),
    ]

    static func runtime(url: String, executor: String) -> DurableRuntime {
        MessagingHarness.makeRuntime(url: url, executorID: executor) { runtime in
            runtime.register(Tracked())
            runtime.register(Enqueuer())
            for queue in queues { runtime.register(queue: queue) }
        }
    }

    @Test("an enqueued workflow runs and its handle returns the result; so does one enqueued by a workflow")
    func basic() async throws {
        let url = try await TestDatabase.fresh("queue_basic").url
        let runtime = Self.runtime(url: url, executor: "q1")
        let (tracker, _) = Trackers.make()
        let handle = try await runtime.enqueue(
            Tracked.self, TrackedInput(tracker: tracker, label: "a", holdMilliseconds: 10), queue: "work")
        #expect(try await handle.result() == "a")
        let parent = try await runtime.start(
            Enqueuer.self, TrackedInput(tracker: tracker, label: "b", holdMilliseconds: 10), id: "parent")
        #expect(try await parent.result() == "via b")
        let rows = try await MessagingHarness(url: url, runtime: runtime).query(
            "SELECT queue_name, status, recovery_attempts FROM dbos.workflow_status WHERE workflow_uuid = 'parent-1'")
        #expect(rows.first?.string(0) == "work")
        #expect(rows.first?.string(1) == "SUCCESS")
        #expect(rows.first?.int(2) == 1)
        await runtime.shutdown()
    }

    @Test("a global concurrency limit holds across two processes")
    func globalConcurrency() async throws {
        let url = try await TestDatabase.fresh("queue_global").url
        let first = Self.runtime(url: url, executor: "g1")
        let second = Self.runtime(url: url, executor: "g2")
        try await first.launch()
        try await second.launch()
        let (name, tracker) = Trackers.make()
        var handles: [WorkflowHandle<String>] = []
        for index in 0..<8 {
            handles.append(
                try await first.enqueue(
                    Tracked.self, TrackedInput(tracker: name, label: "\(index)", holdMilliseconds: 200),
                    queue: "global-two"))
        }
        for handle in handles { _ = try await handle.result() }
        #expect(tracker.maximum <= 2)
        #expect(tracker.maximum == 2)  // both slots were used
        let executors = try await MessagingHarness(url: url, runtime: first).query(
            "SELECT count(DISTINCT executor_id) FROM dbos.workflow_status WHERE queue_name = 'global-two'")
        #expect((executors.first?.int(0) ?? 0) >= 1)
        await first.shutdown()
        await second.shutdown()
    }

    @Test("a per-process limit holds in each process")
    func workerConcurrency() async throws {
        let url = try await TestDatabase.fresh("queue_local").url
        let runtime = Self.runtime(url: url, executor: "l1")
        let (name, tracker) = Trackers.make()
        var handles: [WorkflowHandle<String>] = []
        for index in 0..<4 {
            handles.append(
                try await runtime.enqueue(
                    Tracked.self, TrackedInput(tracker: name, label: "\(index)", holdMilliseconds: 100),
                    queue: "local-one"))
        }
        for handle in handles { _ = try await handle.result() }
        #expect(tracker.maximum == 1)
        await runtime.shutdown()
    }

    @Test("a rate limit spaces starts out")
    func rateLimit() async throws {
        let url = try await TestDatabase.fresh("queue_rate").url
        let runtime = Self.runtime(url: url, executor: "r1")
        let (name, tracker) = Trackers.make()
        var handles: [WorkflowHandle<String>] = []
        for index in 0..<5 {
            handles.append(
                try await runtime.enqueue(
                    Tracked.self, TrackedInput(tracker: name, label: "\(index)", holdMilliseconds: 1), queue: "rate"))
        }
        for handle in handles { _ = try await handle.result() }
        #expect(tracker.starts.count == 5)
        // The claim times, as the database recorded them (a body may begin late on a busy machine; the limit is
        // about claims): 2 per second, so the 3rd comes at least ~1 s after the 1st, the 5th ~2 s after.
        let claims = try await MessagingHarness(url: url, runtime: runtime).query(
            "SELECT started_at_epoch_ms FROM dbos.workflow_status WHERE queue_name = 'rate' ORDER BY 1")
        let starts = claims.rows.compactMap { $0.int64(0) }
        #expect(starts.count == 5)
        #expect(starts[2] - starts[0] >= 950)
        #expect(starts[4] - starts[0] >= 1_950)
        await runtime.shutdown()
    }

    @Test("lower priority values run first", .tags(.slow), .skippedInFastRuns)
    func priority() async throws {
        let url = try await TestDatabase.fresh("queue_priority").url
        let runtime = Self.runtime(url: url, executor: "p1")
        try await runtime.launch()
        let (name, tracker) = Trackers.make()
        // The blocker takes the only slot while the rest are enqueued: it has begun before they are, and holds the
        // slot long enough for four enqueues on a machine that stalls for seconds (3 s could be too little).
        let blocker = try await runtime.enqueue(
            Tracked.self, TrackedInput(tracker: name, label: "blocker", holdMilliseconds: 12_000), queue: "local-one")
        while tracker.order.isEmpty { try await Task.sleep(for: .milliseconds(20)) }
        var handles: [WorkflowHandle<String>] = []
        for (label, priority) in [("p5", 5), ("p1", 1), ("p3", 3), ("p0", 0)] {
            handles.append(
                try await runtime.enqueue(
                    Tracked.self, TrackedInput(tracker: name, label: label, holdMilliseconds: 1), queue: "local-one",
                    options: EnqueueOptions(priority: priority)))
        }
        _ = try await blocker.result()
        for handle in handles { _ = try await handle.result() }
        #expect(tracker.order == ["blocker", "p0", "p1", "p3", "p5"])
        await runtime.shutdown()
    }

    @Test(
        "a deduplication ID admits one live workflow; the caller chooses an error or the holder",
        .tags(.slow), .skippedInFastRuns)
    func deduplication() async throws {
        let url = try await TestDatabase.fresh("queue_dedup").url
        let runtime = Self.runtime(url: url, executor: "d1")
        let (name, _) = Trackers.make()
        // Held long enough to be live through the next two enqueues however slow the machine (4 s could be too
        // little on one that stalls for seconds).
        let input = TrackedInput(tracker: name, label: "x", holdMilliseconds: 12_000)
        let first = try await runtime.enqueue(
            Tracked.self, input, queue: "work", options: EnqueueOptions(deduplicationID: "invoice-7"))
        do {
            _ = try await runtime.enqueue(
                Tracked.self, input, queue: "work", options: EnqueueOptions(deduplicationID: "invoice-7"))
            Issue.record("expected queueDeduplicated")
        } catch let error as DurableError {
            #expect(error.code == .queueDeduplicated)
        }
        let holder = try await runtime.enqueue(
            Tracked.self, input, queue: "work",
            options: EnqueueOptions(deduplicationID: "invoice-7", deduplicationPolicy: .returnExisting))
        #expect(holder.id == first.id)
        _ = try await first.result()
        // Once it finished the ID is free again.
        let again = try await runtime.enqueue(
            Tracked.self, TrackedInput(tracker: name, label: "y", holdMilliseconds: 10), queue: "work",
            options: EnqueueOptions(deduplicationID: "invoice-7"))
        #expect(again.id != first.id)
        _ = try await again.result()
        await runtime.shutdown()
    }

    @Test("a delayed enqueue starts no earlier than its delay", .tags(.slow), .skippedInFastRuns)
    func delayed() async throws {
        let url = try await TestDatabase.fresh("queue_delay").url
        let runtime = Self.runtime(url: url, executor: "dl1")
        let (name, tracker) = Trackers.make()
        let enqueuedAt = Date()
        let handle = try await runtime.enqueue(
            Tracked.self, TrackedInput(tracker: name, label: "later", holdMilliseconds: 1), queue: "work",
            options: EnqueueOptions(delay: .milliseconds(15_000)))
        // Long enough that the status read surely comes before the delay ends (a stalled machine takes seconds).
        #expect(try await handle.status().state == .delayed)
        _ = try await handle.result()
        #expect(tracker.starts.first.map { $0.timeIntervalSince(enqueuedAt) } ?? 0 >= 14.9)
        await runtime.shutdown()
    }

    @Test("bad input: an undeclared queue, a negative delay")
    func badInput() async throws {
        let url = try await TestDatabase.fresh("queue_bad").url
        let runtime = Self.runtime(url: url, executor: "b1")
        let (name, _) = Trackers.make()
        let input = TrackedInput(tracker: name, label: "x", holdMilliseconds: 1)
        do {
            _ = try await runtime.enqueue(Tracked.self, input, queue: "nope")
            Issue.record("expected invalidArgument")
        } catch let error as DurableError {
            #expect(error.code == .invalidArgument)
            #expect(error.message.contains("not declared"))
        }
        do {
            _ = try await runtime.enqueue(
                Tracked.self, input, queue: "work", options: EnqueueOptions(delay: .seconds(-1)))
            Issue.record("expected invalidArgument")
        } catch let error as DurableError {
            #expect(error.code == .invalidArgument)
        }
        await runtime.shutdown()
    }
}
