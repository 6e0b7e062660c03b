import Durable
import EmbeddedPostgres
import Foundation
import Logging

struct QueuedInput: Codable, Sendable {
    var index: Int
    /// Wall-clock time of the enqueue call, for the enqueue-to-start latency.
    var enqueuedAt: Double
}

/// One step; returns how long after its enqueue it started (ms).
struct QueuedOneStep: Workflow {
    static let name = "bench-queued-one-step"
    func run(_ ctx: WorkflowContext, _ input: QueuedInput) async throws -> Double {
        let startedAfter = (Date().timeIntervalSince1970 - input.enqueuedAt) * 1000
        _ = try await ctx.step("noop") { input.index }
        return startedAfter
    }
}

/// Issue 4's figures: enqueue-to-start latency, and throughput of one-step queued workflows with one and four
/// worker processes, beside DBOS Python's.
struct QueueBenchmarks {
    static let queue = WorkflowQueue("bench-queue")
    let url: String
    let schema: String
    var latencySamples = 200
    var throughputCount = 2_000

    static func runtime(url: String, schema: String, executor: String, serve: Bool) -> DurableRuntime {
        var logger = Logger(label: "durable-bench-queues")
        logger.logLevel = .error
        let runtime = DurableRuntime(
            configuration: DurableConfiguration(
                databaseURL: url, schema: schema, executorID: executor, maxConnections: 16,
                servedQueues: serve ? [queue.name] : []),
            logger: logger
        )
        runtime.register(QueuedOneStep())
        runtime.register(queue: queue)
        return runtime
    }

    /// `__queueworker URL SCHEMA`: serves the queue until killed.
    static func serve(url: String, schema: String) async throws {
        let runtime = runtime(
            url: url, schema: schema, executor: "bench-queue-worker-\(ProcessInfo.processInfo.processIdentifier)",
            serve: true)
        try await runtime.launch()
        FileHandle.standardOutput.write(Data("READY\n".utf8))
        while true { try await Task.sleep(for: .seconds(3600)) }
    }

    @discardableResult
    func run() async throws -> [Summary.Row] {
        let producer = Self.runtime(url: url, schema: schema, executor: "bench-queue-producer", serve: false)
        try await producer.launch()
        func format(_ value: Double) -> String { String(format: "%.2f", value) }

        let workers = try await startWorkers(1)
        var latencies: [Double] = []
        for index in 0..<latencySamples {
            let handle = try await producer.enqueue(
                QueuedOneStep.self, QueuedInput(index: index, enqueuedAt: Date().timeIntervalSince1970),
                queue: Self.queue.name)
            latencies.append(
                try await handle.result(
                    minimumPollingInterval: .milliseconds(1), maximumPollingInterval: .milliseconds(5)))
        }
        let oneWorker = try await throughput(producer)
        await stop(workers)
        let fourWorkers = try await startWorkers(4)
        let fourWorkerRate = try await throughput(producer)
        await stop(fourWorkers)
        await producer.shutdown()
        let peer = try await pythonPeer()

        let latency = LatencySummary(latencies)
        print("| queue workload | figure | ours / DBOS Python |")
        print("|---|---:|---:|")
        print(
            "| enqueue → start latency, idle worker (ms) | p50 \(format(latency.p50)), p99 \(format(latency.p99)) | |")
        let ratio = { (rate: Double) in peer.map { String(format: "%.1f×", rate / $0) } ?? "" }
        print("| one-step queued workflows/s, 1 worker process | \(format(oneWorker)) | \(ratio(oneWorker)) |")
        print(
            "| one-step queued workflows/s, 4 worker processes | \(format(fourWorkerRate)) | \(ratio(fourWorkerRate)) |"
        )
        if let peer { print("| DBOS Python 3.4.0, one process (default polling) | \(format(peer)) | |") }
        print("")
        print("\(throughputCount) workflows per throughput run; \(latencySamples) latency samples, one at a time")
        return [
            .init(
                figure: "enqueue → start, idle worker, p50 / p99 (ms)",
                ours: "\(format(latency.p50)) / \(format(latency.p99))"),
            .init(
                figure: "one-step queued workflows/s, 1 worker process", ours: format(oneWorker),
                dbos: peer.map { format($0) } ?? "",
                versusDBOS: ratio(oneWorker), target: "≥ 8× DBOS"),
            .init(
                figure: "one-step queued workflows/s, 4 worker processes", ours: format(fourWorkerRate),
                dbos: peer.map { format($0) } ?? "",
                versusDBOS: ratio(fourWorkerRate), target: "≥ 8× DBOS"),
        ]
    }

    /// Enqueues `throughputCount` workflows from 8 tasks and waits for all; returns workflows per second.
    private func throughput(_ producer: DurableRuntime) async throws -> Double {
        let clock = ContinuousClock()
        let start = clock.now
        let count = throughputCount
        let handles = try await withThrowingTaskGroup(of: [WorkflowHandle<Double>].self) { group in
            for lane in 0..<8 {
                group.addTask {
                    var handles: [WorkflowHandle<Double>] = []
                    for index in stride(from: lane, to: count, by: 8) {
                        handles.append(
                            try await producer.enqueue(
                                QueuedOneStep.self, QueuedInput(index: index, enqueuedAt: Date().timeIntervalSince1970),
                                queue: Self.queue.name))
                    }
                    return handles
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        for handle in handles {
            _ = try await handle.result(
                minimumPollingInterval: .milliseconds(20), maximumPollingInterval: .milliseconds(200))
        }
        let elapsed = start.duration(to: clock.now)
        return Double(count) / (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
    }

    private func startWorkers(_ count: Int) async throws -> [ChildProcess] {
        let executable = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        var workers: [ChildProcess] = []
        for _ in 0..<count {
            let process = try ChildProcess(executable, ["__queueworker", url, schema], standardError: .inherit)
            // Wait for READY so the measurement starts with warm, listening workers.
            _ = await PipeReading.readChunk(process.standardOutput!)
            workers.append(process)
        }
        return workers
    }

    private func stop(_ workers: [ChildProcess]) async {
        for worker in workers {
            worker.signal(SIGKILL)
            await worker.exited()
        }
    }

    private func pythonPeer() async throws -> Double? {
        struct Result: Decodable {
            var perSecond: Double
            enum CodingKeys: String, CodingKey { case perSecond = "per_second" }  // the Python script's key
        }
        return try await PythonPeer.run(script: "queue_throughput.py", [url, "300"], as: Result.self)?.perSecond
    }
}
