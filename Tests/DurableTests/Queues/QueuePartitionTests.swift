import Durable
import Foundation
import Logging
import TestSupport
import Testing

/// Partitioned queues: each partition (a tenant, a user) gets limits of its own, as in DBOS 3.4.0.
@Suite("Queue partitions")
struct QueuePartitionTests {
    static let queues = [
        WorkflowQueue("per-tenant", partitionConcurrency: 1),
        WorkflowQueue(
            "per-tenant-rate", partitionWorkerConcurrency: 1, partitionRateLimit: .init(limit: 1, period: .seconds(3))),
        WorkflowQueue("per-tenant-slow", partitionRateLimit: .init(limit: 1, period: .seconds(60))),
        WorkflowQueue("plain"),
    ]

    static func runtime(url: String, executor: String, servedQueues: Set<String>? = nil) -> DurableRuntime {
        var logger = Logger(label: "queue-partition-tests")
        logger.logLevel = .critical
        let runtime = DurableRuntime(
            configuration: DurableConfiguration(
                databaseURL: url, executorID: executor, maxConnections: 6, servedQueues: servedQueues
            ), logger: logger)
        runtime.register(Tracked())
        for queue in queues { runtime.register(queue: queue) }
        return runtime
    }

    /// The claim-to-finish interval of each workflow of a queue, by partition, as the database recorded it.
    func intervals(_ harness: MessagingHarness, queue: String) async throws -> [String: [ClosedRange<Int64>]] {
        let rows = try await harness.query(
            """
            SELECT queue_partition_key, started_at_epoch_ms, updated_at FROM dbos.workflow_status
            WHERE queue_name = $1 AND status = 'SUCCESS'
            """, [queue])
        var byPartition: [String: [ClosedRange<Int64>]] = [:]
        for row in rows.rows {
            guard let key = row.string(0), let start = row.int64(1), let end = row.int64(2) else { continue }
            byPartition[key, default: []].append(start...end)
        }
        return byPartition
    }

    @Test("a partition concurrency limit holds per partition across two processes, and partitions run side by side")
    func partitionConcurrency() async throws {
        let url = try await TestDatabase.fresh("queue_partition").url
        // All enqueued before anyone serves the queue: both partitions are waiting from the first pass on, however
        // slowly a busy machine enqueues.
        let producer = Self.runtime(url: url, executor: "pa-producer", servedQueues: [])
        var trackers: [String: RunTracker] = [:]
        var ids: [String] = []
        for key in ["tenant-a", "tenant-b"] {
            let (name, tracker) = Trackers.make()
            trackers[key] = tracker
            for index in 0..<3 {
                let input = TrackedInput(tracker: name, label: "\(key)-\(index)", holdMilliseconds: 300)
                ids.append(
                    try await producer.enqueue(
                        Tracked.self, input, queue: "per-tenant", options: EnqueueOptions(partitionKey: key)
                    ).id)
            }
        }
        let first = Self.runtime(url: url, executor: "pa1")
        let second = Self.runtime(url: url, executor: "pa2")
        try await first.launch()
        try await second.launch()
        for id in ids { _ = try await first.handle(for: id, resultType: String.self).result() }
        await producer.shutdown()
        // Within each partition, never two at once (counted in memory, across both runtimes of this process).
        #expect(trackers["tenant-a"]?.maximum == 1)
        #expect(trackers["tenant-b"]?.maximum == 1)
        // Across partitions there is no limit: some run of one partition overlapped a run of the other.
        let byPartition = try await intervals(MessagingHarness(url: url, runtime: first), queue: "per-tenant")
        #expect(byPartition["tenant-a"]?.count == 3)
        #expect(byPartition["tenant-b"]?.count == 3)
        let overlapped = (byPartition["tenant-a"] ?? []).contains { a in
            (byPartition["tenant-b"] ?? []).contains { $0.overlaps(a) }
        }
        #expect(overlapped)
        await first.shutdown()
        await second.shutdown()
    }

    @Test("a partition rate limit spaces the starts of each partition")
    func partitionRateLimit() async throws {
        let url = try await TestDatabase.fresh("queue_partition_rate").url
        // Everything is enqueued before any process serves the queue, so the first dispatch pass finds both
        // partitions waiting; how fast a busy machine enqueues then cannot change what the limits allow.
        let producer = Self.runtime(url: url, executor: "pr-producer", servedQueues: [])
        let (name, _) = Trackers.make()
        var ids: [String] = []
        for index in 0..<2 {
            for key in ["x", "y"] {
                let input = TrackedInput(tracker: name, label: "\(key)\(index)", holdMilliseconds: 1)
                ids.append(
                    try await producer.enqueue(
                        Tracked.self, input, queue: "per-tenant-rate", options: EnqueueOptions(partitionKey: key)
                    ).id)
            }
        }
        let runtime = Self.runtime(url: url, executor: "pr1")
        try await runtime.launch()
        for id in ids { _ = try await runtime.handle(for: id, resultType: String.self).result() }
        let rows = try await MessagingHarness(url: url, runtime: runtime).query(
            """
            SELECT queue_partition_key, started_at_epoch_ms, rate_limited FROM dbos.workflow_status
            WHERE queue_name = 'per-tenant-rate' ORDER BY 2
            """)
        var starts: [String: [Int64]] = [:]
        for row in rows.rows {
            if let key = row.string(0), let start = row.int64(1) { starts[key, default: []].append(start) }
            #expect(row.bool(2) == true)
        }
        // One start per partition per three seconds.
        for key in ["x", "y"] {
            let times = try #require(starts[key])
            #expect(times.count == 2)
            #expect(times[1] - times[0] >= 2_950)
        }
        await runtime.shutdown()
        await producer.shutdown()
    }

    @Test("partitions do not share a partition rate budget: one partition's start leaves the other's budget whole")
    func partitionBudgetsAreSeparate() async throws {
        let url = try await TestDatabase.fresh("queue_partition_budget").url
        let producer = Self.runtime(url: url, executor: "pb-producer", servedQueues: [])
        let (name, _) = Trackers.make()
        // One start per partition per minute: x's second cannot start within this test; y's first must.
        var ids: [String: String] = [:]
        for (label, key) in [("x0", "x"), ("x1", "x"), ("y0", "y")] {
            let input = TrackedInput(tracker: name, label: label, holdMilliseconds: 1)
            ids[label] = try await producer.enqueue(
                Tracked.self, input, queue: "per-tenant-slow", options: EnqueueOptions(partitionKey: key)
            ).id
        }
        let runtime = Self.runtime(url: url, executor: "pb1")
        try await runtime.launch()
        let waited = ids
        for label in ["x0", "y0"] {
            let id = waited[label] ?? ""
            let finished = try await valueWithin(.seconds(30)) {
                try await runtime.handle(for: id, resultType: String.self).result()
            }
            #expect(finished == label, "\(label) did not run within 30 s")
        }
        #expect(try await runtime.status(of: ids["x1"]!)?.state == .enqueued)
        await runtime.shutdown()
        await producer.shutdown()
    }

    @Test("the queues table records the partition limits, so DBOS's tools show them")
    func recordedForDBOS() async throws {
        let url = try await TestDatabase.fresh("queue_partition_row").url
        let runtime = Self.runtime(url: url, executor: "prow")
        try await runtime.launch()
        let rows = try await MessagingHarness(url: url, runtime: runtime).query(
            """
            SELECT name, partition_queue, partition_concurrency, partition_worker_concurrency, partition_rate_limit_max,
                   partition_rate_limit_period_sec
            FROM dbos.queues WHERE name IN ('per-tenant', 'per-tenant-rate', 'plain') ORDER BY name
            """)
        #expect(rows.rows.count == 3)
        let byName = Dictionary(uniqueKeysWithValues: rows.rows.compactMap { row in row.string(0).map { ($0, row) } })
        #expect(byName["per-tenant"]?.bool(1) == true)
        #expect(byName["per-tenant"]?.int(2) == 1)
        #expect(byName["per-tenant"]?.int(3) == nil)
        #expect(byName["per-tenant-rate"]?.int(3) == 1)
        #expect(byName["per-tenant-rate"]?.int(4) == 1)
        #expect(byName["per-tenant-rate"]?.double(5) == 3.0)
        #expect(byName["plain"]?.bool(1) == false)
        await runtime.shutdown()
    }

    @Test(
        "bad input: no key on a partitioned queue, a key on a plain one, an empty key, deduplication, contradictory limits"
    )
    func badInput() async throws {
        let url = try await TestDatabase.fresh("queue_partition_bad").url
        let runtime = Self.runtime(url: url, executor: "pbad")
        let (name, _) = Trackers.make()
        let input = TrackedInput(tracker: name, label: "x", holdMilliseconds: 1)
        let refused: [(String, EnqueueOptions, String)] = [
            ("per-tenant", EnqueueOptions(), "needs EnqueueOptions.partitionKey"),
            ("plain", EnqueueOptions(partitionKey: "a"), "not partitioned"),
            ("per-tenant", EnqueueOptions(partitionKey: ""), "must not be empty"),
            ("per-tenant", EnqueueOptions(partitionKey: "a\0b"), "NUL"),
            ("per-tenant", EnqueueOptions(deduplicationID: "d", partitionKey: "a"), "deduplication"),
        ]
        for (queue, options, phrase) in refused {
            do {
                _ = try await runtime.enqueue(Tracked.self, input, queue: queue, options: options)
                Issue.record("expected invalidArgument for \(phrase)")
            } catch let error as DurableError {
                #expect(error.code == .invalidArgument)
                #expect(error.message.contains(phrase))
            }
        }
        let written = try await MessagingHarness(url: url, runtime: runtime).query(
            "SELECT count(*) FROM dbos.workflow_status")
        #expect(written.first?.int(0) == 0)
        await runtime.shutdown()

        for queue in [
            WorkflowQueue("q", concurrency: 2, partitionConcurrency: 3),
            WorkflowQueue("q", workerConcurrency: 1, partitionWorkerConcurrency: 2),
            WorkflowQueue("q", partitionConcurrency: 1, partitionWorkerConcurrency: 2),
            WorkflowQueue("q", partitionConcurrency: 0),
            WorkflowQueue("q", partitionRateLimit: .init(limit: 0, period: .seconds(1))),
        ] {
            let invalid = MessagingHarness.makeRuntime(url: url, executorID: "pbad2") { $0.register(queue: queue) }
            do {
                try await invalid.launch()
                Issue.record("expected invalidConfiguration for \(queue)")
                await invalid.shutdown()
            } catch let error as DurableError {
                #expect(error.code == .invalidConfiguration)
            }
        }
    }

    @Test(
        "a workflow an outside client enqueued onto a partitioned queue without a key stays ENQUEUED, and the log says why"
    )
    func keylessFromOutside() async throws {
        let url = try await TestDatabase.fresh("queue_partition_keyless").url
        let log = CapturedLog()
        let runtime = DurableRuntime(
            configuration: DurableConfiguration(databaseURL: url, executorID: "pkeyless", maxConnections: 6),
            logger: log.logger(level: .info))
        runtime.register(Tracked())
        for queue in Self.queues { runtime.register(queue: queue) }
        try await runtime.launch()
        let harness = MessagingHarness(url: url, runtime: runtime)
        // As DBOS's SQL-level client enqueues, with no partition key (our own enqueue refuses that).
        let (name, _) = Trackers.make()
        let input = String(
            decoding: try JSONEncoder().encode(TrackedInput(tracker: name, label: "keyless", holdMilliseconds: 1)),
            as: UTF8.self)
        _ = try await harness.query(
            "SELECT dbos.enqueue_workflow($1, 'per-tenant', ARRAY[$2::json], workflow_id => 'keyless')",
            [Tracked.name, input])
        let keyed = try await runtime.enqueue(
            Tracked.self, TrackedInput(tracker: name, label: "keyed", holdMilliseconds: 1), queue: "per-tenant",
            options: EnqueueOptions(partitionKey: "t"))
        #expect(try await keyed.result() == "keyed")

        var warned = false
        for _ in 0..<800 where !warned {
            warned = log.all.contains { $0.contains("keyless") && $0.contains("no partition key") }
            if !warned { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(warned, "no log line names the workflow without a partition key")
        #expect(!log.all.contains { $0.contains("keyless") && $0.contains("not registered") })
        #expect(
            try await harness.query("SELECT status FROM dbos.workflow_status WHERE workflow_uuid = 'keyless'").first?
                .string(0) == "ENQUEUED")
        await runtime.shutdown()
    }

    @Test("more partitions than one pass looks at are all served (the pass goes on from where the last one stopped)")
    func manyPartitions() async throws {
        let url = try await TestDatabase.fresh("queue_partition_many").url
        let producer = Self.runtime(url: url, executor: "pm-producer", servedQueues: [])
        let (name, tracker) = Trackers.make()
        // More than QueueDispatcher.partitionsPerPass (256).
        let count = 300
        var ids: [String] = []
        for index in 0..<count {
            let input = TrackedInput(tracker: name, label: "p\(index)", holdMilliseconds: 1)
            ids.append(
                try await producer.enqueue(
                    Tracked.self, input, queue: "per-tenant", options: EnqueueOptions(partitionKey: "tenant-\(index)")
                ).id)
        }
        let runtime = Self.runtime(url: url, executor: "pm1")
        try await runtime.launch()
        for id in ids { _ = try await runtime.handle(for: id, resultType: String.self).result() }
        #expect(Set(tracker.order).count == count)
        await runtime.shutdown()
        await producer.shutdown()
    }
}
