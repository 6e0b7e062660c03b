import EmbeddedPostgres
import Foundation
import Synchronization
import Testing

/// A `DurableTestWorker` child process: started with flags, read line by line, killed with a real SIGKILL.
final class ChildWorker: Sendable {
    /// Lines read so far, and the bytes of an unfinished line.
    private final class Buffer: Sendable {
        let lines = Mutex<[String]>([])
        let pending = Mutex(LineBuffer())
    }

    private let process: ChildProcess
    private let buffer = Buffer()

    /// The worker executable, built beside the test bundle.
    static var executable: String {
        let bundle = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: bundle).deletingLastPathComponent().appendingPathComponent("DurableTestWorker").path
    }

    init(_ arguments: [String]) throws {
        // ChildProcess, not Foundation's Process: see ChildProcess for the exits Process can miss.
        process = try ChildProcess(Self.executable, arguments, standardError: .null)
        let output = process.standardOutput!
        // A thread of its own reads the pipe with read(2) (see PipeReading) and splits it into lines.
        let reader = Thread { [buffer] in
            PipeReading.readChunks(output) { chunk in
                let complete = buffer.pending.withLock { $0.lines(adding: chunk) }
                buffer.lines.withLock { $0.append(contentsOf: complete) }
            }
        }
        reader.start()
    }

    /// A test that fails midway must not leave a worker waiting forever.
    deinit {
        process.signal(SIGKILL)
    }

    var output: [String] { buffer.lines.withLock { $0 } }

    /// Waits until a line starting with `prefix` appears; returns it, or nil after `timeout`.
    @discardableResult
    func waitFor(_ prefix: String, timeout: Duration = .seconds(30)) async -> String? {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while ContinuousClock.now < deadline {
            if let line = output.first(where: { $0.hasPrefix(prefix) }) { return line }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return nil
    }

    /// SIGKILL: no cleanup, no flush.
    func kill() async {
        process.signal(SIGKILL)
        await process.exited()
    }

    /// Waits until the worker exits on its own; after `timeout` it records an issue and kills it, so a hang
    /// fails this test instead of stalling the run.
    func waitUntilExit(timeout: Duration = .seconds(120), sourceLocation: SourceLocation = #_sourceLocation) async {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while process.isRunning {
            if ContinuousClock.now >= deadline {
                Issue.record("worker did not exit within \(timeout); output: \(output.suffix(10))", sourceLocation: sourceLocation)
                await kill()
                return
            }
            try? await Task.sleep(for: .milliseconds(10))
        }
    }
}
