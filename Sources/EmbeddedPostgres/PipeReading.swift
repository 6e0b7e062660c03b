import Dispatch
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Reading a child process's pipe with plain read(2), retrying when a signal interrupts it.
///
/// Foundation's `readDataToEndOfFile()` and `availableData` crash on EINTR (they `try!` inside), which the
/// SIGCHLDs of other children cause now and then, and `read(upToCount:)` waits for the whole count. These block:
/// call them on a thread of their own, never on Swift's cooperative pool.
public enum PipeReading {
    /// Calls `chunk` with each piece read from `descriptor` until end of file.
    public static func readChunks(_ descriptor: Int32, _ chunk: (Data) -> Void) {
        var buffer = [UInt8](repeating: 0, count: chunkSize)
        while true {
            let piece = readChunk(descriptor, into: &buffer)
            if piece.isEmpty { return }
            chunk(piece)
        }
    }

    /// The next piece `descriptor` delivers (up to 64 KB, waiting for at least one byte); empty at end of file
    /// or on a read error.
    public static func readChunk(_ descriptor: Int32) -> Data {
        var buffer = [UInt8](repeating: 0, count: chunkSize)
        return readChunk(descriptor, into: &buffer)
    }

    private static let chunkSize = 64 * 1024

    private static func readChunk(_ descriptor: Int32, into buffer: inout [UInt8]) -> Data {
        while true {
            let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count > 0 { return Data(buffer[0..<count]) }
            if count < 0, errno == EINTR { continue }
            return Data()
        }
    }

    /// Calls `chunk` with each piece read from `handle` until end of file.
    public static func readChunks(_ handle: FileHandle, _ chunk: (Data) -> Void) {
        readChunks(handle.fileDescriptor, chunk)
    }

    /// Reads `handle` until end of file.
    public static func readToEnd(_ handle: FileHandle) -> Data {
        var data = Data()
        readChunks(handle) { data.append($0) }
        return data
    }

    /// Reads `handle` until end of file on a Dispatch thread, for async callers: the read blocks, and Swift's
    /// cooperative pool (two threads on a small machine) must not.
    public static func readToEnd(_ handle: FileHandle) async -> Data {
        await offThePool { readToEnd(handle) }
    }

    /// The next piece `handle` delivers, read on a Dispatch thread, for async callers; empty at end of file.
    public static func readChunk(_ handle: FileHandle) async -> Data {
        await offThePool { readChunk(handle.fileDescriptor) }
    }

    private static func offThePool(_ read: @escaping @Sendable () -> Data) async -> Data {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(returning: read()) }
        }
    }
}

/// Bytes read so far, cut into complete lines as they arrive.
public struct LineBuffer: Sendable {
    private var pending = Data()

    /// An empty buffer.
    public init() {}

    /// Adds `chunk` and returns the lines it completed, without their newlines; an unfinished line waits.
    public mutating func lines(adding chunk: Data) -> [String] {
        pending.append(chunk)
        var found: [String] = []
        while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
            found.append(String(decoding: pending[pending.startIndex..<newline], as: UTF8.self))
            pending.removeSubrange(pending.startIndex...newline)
        }
        return found
    }
}
