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
        // A thread of its own reads the pipe (blocking) and hands on each complete line.
        // read(2), not FileHandle: `read(upToCount:)` waits for the whole count, and Foundation's other reads trap on
        // EINTR.
        Thread {
            var pending = Data()
            var buffer = [UInt8](repeating: 0, count: 64 * 1024)
            while true {
                let count = buffer.withUnsafeMutableBytes { read(output.fileDescriptor, $0.baseAddress, $0.count) }
                if count < 0, errno == EINTR { continue }
                guard count > 0 else { break }
                pending.append(contentsOf: buffer[0..<count])
                while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    continuation.yield(String(decoding: pending[pending.startIndex..<newline], as: UTF8.self))
                    pending.removeSubrange(pending.startIndex...newline)
                }
            }
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
