import Durable
import EmbeddedPostgres
import Foundation
import Logging

/// Issue 3's figures: send-to-recv wake-up latency across two processes, and the memory of one process holding
/// 10,000 sleeping workflows.
struct PrimitiveBenchmarks {
    let url: String
    let schema: String
    var messages = 300
    var sleepers = 10_000

    @discardableResult
    func run() async throws -> [Summary.Row] {
        let latencies = try await sendToReceiveLatency()
        let summary = LatencySummary(latencies)
        let (before, after) = try await sleepingMemory()
        func format(_ value: Double) -> String { String(format: "%.2f", value) }
        print("| primitive | samples | p50 | p99 | mean |")
        print("|---|---:|---:|---:|---:|")
        print(
            "| send → recv wake-up, two processes (ms) | \(summary.count) | \(format(summary.p50)) | \(format(summary.p99)) | \(format(summary.mean)) |"
        )
        print("")
        print(
            "resident memory of one process: \(format(before)) MB launched, \(format(after)) MB holding \(sleepers) sleeping workflows (target < 150 MB)"
        )
        struct PeerMemory: Decodable {
            var before: Double
            var after: Double
        }
        let peer = try await PythonPeer.run(script: "sleepers_memory.py", [url, String(sleepers)], as: PeerMemory.self)
        if let peer {
            print(
                "DBOS Python 3.4.0 (async workflows, one event loop): \(format(peer.before)) MB launched, \(format(peer.after)) MB holding \(sleepers); ours / theirs: \(String(format: "%.2f×", after / peer.after))"
            )
        }
        return [
            .init(
                figure: "send → recv wake-up across processes, p50 / p99 (ms)",
                ours: "\(format(summary.p50)) / \(format(summary.p99))", target: "p50 < 5 ms"),
            .init(
                figure: "resident memory, one process holding \(sleepers) sleeping workflows (MB)", ours: format(after),
                dbos: peer.map { format($0.after) } ?? "",
                versusDBOS: peer.map { Summary.ratio(after / $0.after) } ?? "", target: "< 150 MB"),
        ]
    }

    /// A receiver workflow in a child process; this process sends it `messages` pings one at a time, each
    /// carrying its send time, and waits until it has been received before sending the next.
    private func sendToReceiveLatency() async throws -> [Double] {
        var logger = Logger(label: "durable-bench")
        logger.logLevel = .error
        let sender = DurableRuntime(
            configuration: DurableConfiguration(databaseURL: url, schema: schema, executorID: "bench-sender"),
            logger: logger)
        try await sender.launch()
        let id = "ping-\(UUID().uuidString.prefix(8))"
        let child = try ChildProcess(
            try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"),
            ["__receiver", url, schema, id, String(messages)], standardError: .inherit)
        // Wait until the receiver's workflow exists.
        while try await sender.status(of: id) == nil { try await Task.sleep(for: .milliseconds(20)) }
        for index in 1...messages {
            try await Task.sleep(for: .milliseconds(3))  // let the receiver get back to waiting
            try await sender.send(to: id, topic: "ping", Date().timeIntervalSince1970)
            while (try await sender.getEvent(id, key: "received", as: Int.self, timeout: .seconds(30)) ?? 0) < index {
                try await Task.sleep(for: .milliseconds(1))
            }
        }
        let data = await PipeReading.readToEnd(child.standardOutput!)
        await child.exited()
        await sender.shutdown()
        guard let json = String(decoding: data, as: UTF8.self).split(separator: "\n").last,
            let latencies = try? JSONDecoder().decode([Double].self, from: Data(json.utf8))
        else {
            throw BenchError("the receiver process did not report its latencies")
        }
        return latencies
    }

    /// A child process starts `sleepers` workflows that sleep for an hour and reports its resident memory.
    private func sleepingMemory() async throws -> (Double, Double) {
        // A schema of their own: the sleepers stay PENDING after the child exits, and runtimes of later suites in
        // the main schema would otherwise take them over (their executor falls silent) in the middle of a figure.
        let child = try ChildProcess(
            try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"),
            ["__sleepers", url, schema + "_sleepers", String(sleepers)], standardError: .inherit)
        let data = await PipeReading.readToEnd(child.standardOutput!)
        await child.exited()
        let parts = String(decoding: data, as: UTF8.self).split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap
        { Double($0) }
        guard parts.count == 2 else { throw BenchError("the sleepers process did not report its memory") }
        return (parts[0], parts[1])
    }
}
