import Durable
import EmbeddedPostgres
import Foundation
import LibPQ
import Logging
import Synchronization

/// One step whose body blocks forever in a process started with BENCH_BLOCK=1 (the one the benchmark kills),
/// and returns at once anywhere else (the one that recovers it).
struct BlockableOneStep: Workflow {
    static let name = "bench-blockable-one-step"
    func run(_ ctx: WorkflowContext, _ index: Int) async throws -> Int {
        try await ctx.step("work") {
            if ProcessInfo.processInfo.environment["BENCH_BLOCK"] == "1" {
                while true { try await Task.sleep(for: .seconds(3600)) }
            }
            return index
        }
    }
}

/// Issue 5's scale figures: the commit ceiling at 1, 8 and 64 connections, one-step workflow throughput at the
/// same concurrencies, and the time to recover 10,000 pending workflows after a SIGKILL.
struct ScaleBenchmarks {
    let url: String
    let schema: String
    var seconds: Double = 3
    var pending = 10_000

    static func runtime(url: String, schema: String, executor: String, connections: Int) -> DurableRuntime {
        var logger = Logger(label: "durable-bench-scale")
        logger.logLevel = .error
        let runtime = DurableRuntime(
            configuration: DurableConfiguration(
                databaseURL: url, schema: schema, executorID: executor, maxConnections: connections), logger: logger)
        runtime.register(NoOpWorkflow())
        runtime.register(BlockableOneStep())
        return runtime
    }

    /// `__pending URL SCHEMA EXECUTOR COUNT`: starts COUNT blocked workflows, says STARTED, and waits to be killed.
    static func holdPending(url: String, schema: String, executor: String, count: Int) async throws {
        let runtime = runtime(url: url, schema: schema, executor: executor, connections: 16)
        try await runtime.launch()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for lane in 0..<8 {
                group.addTask {
                    for index in stride(from: lane, to: count, by: 8) {
                        _ = try await runtime.start(BlockableOneStep.self, index)
                    }
                }
            }
            try await group.waitForAll()
        }
        FileHandle.standardOutput.write(Data("STARTED\n".utf8))
        while true { try await Task.sleep(for: .seconds(3600)) }
    }

    @discardableResult
    func run() async throws -> [Summary.Row] {
        func format(_ value: Double) -> String { String(format: "%.0f", value) }
        let concurrencies = [1, 8, 64]
        var rows: [(commits: Double, workflows: Double)] = []
        for concurrency in concurrencies {
            rows.append((try await commitRate(concurrency), try await workflowRate(concurrency)))
        }
        // The peer right after, on the same server: one-step workflows from as many threads.
        let peer = try await PythonPeer.run(
            script: "throughput.py", [url, String(seconds)] + concurrencies.map(String.init), as: [String: Double].self)
        print(
            "| concurrency | raw insert commits/s | one-step workflows/s | commits/s the workflows needed (3 each) | share of the commit ceiling | DBOS Python 3.4.0 workflows/s | ours / DBOS Python |"
        )
        print("|---:|---:|---:|---:|---:|---:|---:|")
        for (concurrency, row) in zip(concurrencies, rows) {
            let theirs = peer?[String(concurrency)]
            print(
                "| \(concurrency) | \(format(row.commits)) | \(format(row.workflows)) | \(format(row.workflows * 3)) | \(String(format: "%.0f%%", row.workflows * 3 / row.commits * 100)) | \(theirs.map(format) ?? "") | \(theirs.map { String(format: "%.1f×", row.workflows / $0) } ?? "") |"
            )
        }
        let recovery = try await recoveryTime()
        print("")
        print(
            String(
                format:
                    "recovery of %d pending workflows after a SIGKILL: %.2f s from launch to the last one finished (launch itself %.2f s)",
                pending, recovery.total, recovery.launch))
        var summary: [Summary.Row] = []
        for (concurrency, row) in zip(concurrencies, rows) {
            summary.append(
                .init(
                    figure: "raw insert commits/s, \(concurrency) connection\(concurrency == 1 ? "" : "s") (floor)",
                    ours: format(row.commits)))
        }
        for (concurrency, row) in zip(concurrencies, rows) {
            let theirs = peer?[String(concurrency)]
            summary.append(
                .init(
                    figure: "one-step workflows/s, concurrency \(concurrency)", ours: format(row.workflows),
                    dbos: theirs.map(format) ?? "",
                    versusDBOS: theirs.map { Summary.ratio(row.workflows / $0) } ?? "",
                    versusFloor: Summary.percent(row.workflows * 3 / row.commits) + " of the commits",
                    target: concurrency == 64 ? "≥ 6× DBOS, ≥ 60 % of the commits" : ""
                ))
        }
        summary.append(
            .init(
                figure: "recovery of \(pending) pending workflows after SIGKILL (s)",
                ours: Summary.number(recovery.total), target: "≤ 10 s plus their work"))
        return summary
    }

    private func commitRate(_ connections: Int) async throws -> Double {
        let table = SQLIdentifier.quote(schema) + ".raw_commits"
        let deadline = ContinuousClock.now.advanced(by: .milliseconds(Int64(seconds * 1000)))
        let total = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<connections {
                group.addTask {
                    let connection = try await PGConnection.connect(
                        PGConfiguration(connectionString: ConnectionString(url)))
                    var done = 0
                    while ContinuousClock.now < deadline {
                        try await connection.query("INSERT INTO \(table) (v) VALUES ($1)", ["x"])
                        done += 1
                    }
                    await connection.close()
                    return done
                }
            }
            return try await group.reduce(0, +)
        }
        return Double(total) / seconds
    }

    private func workflowRate(_ concurrency: Int) async throws -> Double {
        // The default pool (16 connections), as a service would run it: at 64-way concurrency the engine batches
        // checkpoints and outcomes rather than opening a backend per workflow, which two cores cannot feed.
        let runtime = Self.runtime(url: url, schema: schema, executor: "bench-scale-\(concurrency)", connections: 16)
        try await runtime.launch()
        let deadline = ContinuousClock.now.advanced(by: .milliseconds(Int64(seconds * 1000)))
        let total = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<concurrency {
                group.addTask {
                    var done = 0
                    while ContinuousClock.now < deadline {
                        _ = try await runtime.start(NoOpWorkflow.self, 1).result()
                        done += 1
                    }
                    return done
                }
            }
            return try await group.reduce(0, +)
        }
        await runtime.shutdown()
        return Double(total) / seconds
    }

    private func recoveryTime() async throws -> (total: Double, launch: Double) {
        let executor = "bench-recovery-\(UUID().uuidString.prefix(6))"
        var environment = ProcessInfo.processInfo.environment
        environment["BENCH_BLOCK"] = "1"
        let child = try ChildProcess(
            try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"),
            ["__pending", url, schema, executor, String(pending)], environment: environment, standardError: .inherit)
        var seen = ""
        while !seen.contains("STARTED") {
            let chunk = await PipeReading.readChunk(child.standardOutput!)
            if chunk.isEmpty { throw BenchError("the process holding pending workflows ended early") }
            seen += String(decoding: chunk, as: UTF8.self)
        }
        child.signal(SIGKILL)
        await child.exited()

        let clock = ContinuousClock()
        let start = clock.now
        let runtime = Self.runtime(url: url, schema: schema, executor: executor, connections: 32)
        try await runtime.launch()
        let launched = start.duration(to: clock.now)
        let checker = try await PGConnection.connect(PGConfiguration(connectionString: ConnectionString(url)))
        let statusTable = SQLIdentifier.quote(schema) + ".workflow_status"
        while true {
            let left =
                try await checker.query(
                    "SELECT count(*) FROM \(statusTable) WHERE executor_id = $1 AND status = 'PENDING'", [executor]
                ).first?.int(0) ?? 0
            if left == 0 { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        let total = start.duration(to: clock.now)
        await checker.close()
        await runtime.shutdown()
        return (total.milliseconds / 1000, launched.milliseconds / 1000)
    }
}
