import EmbeddedPostgres
import Foundation
import Synchronization

/// A worker child process whose stdout arrives line by line, and which can be killed for real.
final class DemoWorker: Sendable {
    let process: ChildProcess
    let lines: AsyncStream<String>

    init(executable: String, arguments: [String]) throws {
        // EmbeddedPostgres's ChildProcess: Foundation's Process can miss a child's exit on Linux.
        let process = try ChildProcess(executable, arguments, standardError: .inherit)
        let (lines, continuation) = AsyncStream.makeStream(of: String.self)
        let output = process.standardOutput!
        // A thread of its own reads the pipe (blocking, see PipeReading) and hands on each complete line.
        Thread {
            var buffer = LineBuffer()
            PipeReading.readChunks(output) { chunk in buffer.lines(adding: chunk).forEach { continuation.yield($0) } }
            continuation.finish()
        }.start()
        self.process = process
        self.lines = lines
    }

    var pid: Int32 { process.pid }

    /// Sends SIGKILL: no cleanup, no flush, exactly like an OOM kill or a pulled plug.
    func killHard() async {
        process.signal(SIGKILL)
        await process.exited()
    }
}
