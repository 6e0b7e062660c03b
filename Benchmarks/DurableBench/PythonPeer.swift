import Foundation

/// DBOS Transact Python 3.4.0 running the same sequential workloads, measured by its own script
/// (`Benchmarks/dbos-python/sequential_workflows.py`) in the git-ignored `.venv-dbos` virtualenv.
struct PythonPeer {
    let python: String
    let script: String

    /// The peer, if its virtualenv exists: `DURABLE_DBOS_PYTHON`, else `.venv-dbos/bin/python` in the current
    /// directory (`scripts/test` and `scripts/bench` create it).
    static func locate() -> PythonPeer? {
        let environment = ProcessInfo.processInfo.environment
        let python = environment["DURABLE_DBOS_PYTHON"] ?? ".venv-dbos/bin/python"
        let script = "Benchmarks/dbos-python/sequential_workflows.py"
        guard FileManager.default.isExecutableFile(atPath: python), FileManager.default.fileExists(atPath: script) else { return nil }
        return PythonPeer(python: python, script: script)
    }

    /// Runs one round and returns the samples by step count (0, 1, 10), in milliseconds.
    func measure(url: String, counts: (Int, Int, Int)) throws -> [Int: [Double]] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [script, url, String(counts.0), String(counts.1), String(counts.2)]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0,
              let decoded = try? JSONDecoder().decode([String: [Double]].self, from: data) else {
            throw BenchError("the DBOS Python peer failed (exit \(process.terminationStatus))")
        }
        var samples: [Int: [Double]] = [:]
        for (key, values) in decoded { if let steps = Int(key) { samples[steps] = values } }
        return samples
    }
}

extension PythonPeer {
    /// Runs one of the peer scripts in `Benchmarks/dbos-python` and decodes the JSON it prints; nil when the
    /// virtualenv is missing (the peer's rows are then left out).
    static func run<Output: Decodable>(script name: String, _ arguments: [String], as type: Output.Type) throws -> Output? {
        let python = ProcessInfo.processInfo.environment["DURABLE_DBOS_PYTHON"] ?? ".venv-dbos/bin/python"
        let script = "Benchmarks/dbos-python/" + name
        guard FileManager.default.isExecutableFile(atPath: python), FileManager.default.fileExists(atPath: script) else { return nil }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [script] + arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice  // DBOS's own warnings (e.g. sleepers cancelled at exit)
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw BenchError("the DBOS Python peer \(name) failed (exit \(process.terminationStatus))") }
        return try JSONDecoder().decode(Output.self, from: data)
    }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
