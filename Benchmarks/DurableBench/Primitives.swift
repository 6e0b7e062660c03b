import Durable
import Foundation
import Logging

/// Receives `count` messages, each carrying its send time, and returns how long each took to arrive (ms).
struct PingReceiver: Workflow {
    static let name = "bench-ping-receiver"
    func run(_ ctx: WorkflowContext, _ count: Int) async throws -> [Double] {
        var latencies: [Double] = []
        for _ in 0..<count {
            guard let sentAt = try await ctx.recv(Double.self, topic: "ping", timeout: .seconds(30)) else { break }
            latencies.append((Date().timeIntervalSince1970 - sentAt) * 1000)
            try await ctx.setEvent("received", latencies.count)
        }
        return latencies
    }
}

/// Sleeps for an hour: the memory benchmark holds thousands of these.
struct Sleeper: Workflow {
    static let name = "bench-sleeper"
    func run(_ ctx: WorkflowContext, _ seconds: Int) async throws -> Int {
        try await ctx.sleep(for: .seconds(seconds))
        return seconds
    }
}

/// The child-process side of the primitive benchmarks.
enum PrimitiveWorker {
    static func runtime(url: String, schema: String, executor: String) -> DurableRuntime {
        var logger = Logger(label: "durable-bench-worker")
        logger.logLevel = .error
        let runtime = DurableRuntime(
            configuration: DurableConfiguration(databaseURL: url, schema: schema, executorID: executor), logger: logger)
        runtime.register(PingReceiver())
        runtime.register(Sleeper())
        return runtime
    }

    /// `__receiver URL SCHEMA ID COUNT`: runs the receiving workflow and prints its latencies as JSON.
    static func receive(url: String, schema: String, id: String, count: Int) async throws {
        let runtime = runtime(
            url: url, schema: schema, executor: "bench-receiver-\(ProcessInfo.processInfo.processIdentifier)")
        try await runtime.launch()
        let latencies = try await runtime.start(PingReceiver.self, count, id: id).result()
        FileHandle.standardOutput.write(try JSONEncoder().encode(latencies) + Data("\n".utf8))
        await runtime.shutdown()
    }

    /// `__sleepers URL SCHEMA COUNT`: starts COUNT sleeping workflows and prints this process's resident memory.
    static func holdSleepers(url: String, schema: String, count: Int) async throws {
        let runtime = runtime(
            url: url, schema: schema, executor: "bench-sleepers-\(ProcessInfo.processInfo.processIdentifier)")
        try await runtime.launch()
        let before = residentMegabytes()
        try await withThrowingTaskGroup(of: Void.self) { group in
            let lanes = 8
            for lane in 0..<lanes {
                group.addTask {
                    for index in stride(from: lane, to: count, by: lanes) {
                        _ = try await runtime.start(
                            Sleeper.self, 3600, id: "sleeper-\(ProcessInfo.processInfo.processIdentifier)-\(index)")
                    }
                }
            }
            try await group.waitForAll()
        }
        // Let every workflow reach its sleep (its wake-up time checkpointed) before measuring.
        try await Task.sleep(for: .seconds(3))
        FileHandle.standardOutput.write(Data(String(format: "%.1f %.1f\n", before, residentMegabytes()).utf8))
        exit(0)  // the sleepers stay PENDING in the throwaway schema; nothing to clean up
    }

    static func residentMegabytes() -> Double {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
            let kilobytes = Double(line.split(separator: " ").dropFirst().first ?? "")
        else { return 0 }
        return kilobytes / 1024
    }
}
