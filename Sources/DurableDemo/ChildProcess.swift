import Foundation
import Synchronization

/// A worker child process whose stdout arrives line by line, and which can be killed for real.
final class ChildProcess: Sendable {
    let process: Process
    let lines: AsyncStream<String>

    init(executable: String, arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        let (lines, continuation) = AsyncStream.makeStream(of: String.self)
        let buffer = Mutex(Data())
        output.fileHandleForReading.readabilityHandler = { handle in
            let chunk = handle.availableData
            if chunk.isEmpty {
                handle.readabilityHandler = nil
                continuation.finish()
                return
            }
            let complete: [String] = buffer.withLock { pending in
                pending.append(chunk)
                var found: [String] = []
                while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    found.append(String(decoding: pending[pending.startIndex..<newline], as: UTF8.self))
                    pending.removeSubrange(pending.startIndex...newline)
                }
                return found
            }
            complete.forEach { continuation.yield($0) }
        }
        try process.run()
        self.process = process
        self.lines = lines
    }

    var pid: Int32 { process.processIdentifier }

    /// Sends SIGKILL: no cleanup, no flush, exactly like an OOM kill or a pulled plug.
    func killHard() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}
