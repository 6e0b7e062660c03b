import EmbeddedPostgres
import Foundation

/// DBOS Transact Python 3.4.0, the peer: its scripts in `Benchmarks/dbos-python`, run with the git-ignored
/// `.venv-dbos` virtualenv (or `DURABLE_DBOS_PYTHON`), which `scripts/test` and `scripts/bench` create.
enum PythonPeer {
    static let scriptDirectory = "Benchmarks/dbos-python/"

    /// The interpreter and the script's path, if both exist (else the peer's rows are left out).
    static func paths(of name: String) -> (python: String, script: String)? {
        let python = ProcessInfo.processInfo.environment["DURABLE_DBOS_PYTHON"] ?? ".venv-dbos/bin/python"
        let script = scriptDirectory + name
        guard FileManager.default.isExecutableFile(atPath: python), FileManager.default.fileExists(atPath: script)
        else { return nil }
        return (python, script)
    }

    /// True when the peer can run here.
    static var isAvailable: Bool { paths(of: "sequential_workflows.py") != nil }

    /// One round of the sequential workloads: the samples by step count (0, 1, 10), in milliseconds.
    static func sequentialSamples(url: String, counts: (Int, Int, Int)) async throws -> [Int: [Double]] {
        let decoded =
            try await run(
                script: "sequential_workflows.py", [url, String(counts.0), String(counts.1), String(counts.2)],
                as: [String: [Double]].self) ?? [:]
        var samples: [Int: [Double]] = [:]
        for (key, values) in decoded { if let steps = Int(key) { samples[steps] = values } }
        return samples
    }

    /// Runs one of the peer scripts and decodes the JSON it prints; nil when the virtualenv is missing.
    static func run<Output: Decodable>(script name: String, _ arguments: [String], as type: Output.Type) async throws
        -> Output?
    {
        guard let (python, script) = paths(of: name) else { return nil }
        // stderr dropped: DBOS's own warnings (e.g. sleepers cancelled at exit).
        let process = try ChildProcess(python, [script] + arguments, standardError: .null)
        let data = await PipeReading.readToEnd(process.standardOutput!)
        let ended = await process.exited()
        guard ended.succeeded else { throw BenchError("the DBOS Python peer \(name) failed (\(ended))") }
        return try JSONDecoder().decode(Output.self, from: data)
    }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
