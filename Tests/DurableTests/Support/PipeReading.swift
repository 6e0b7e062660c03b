import Foundation

/// Reading child processes' pipes safely. Foundation's `readDataToEndOfFile()` and `availableData` crash on
/// EINTR (they `try!` internally), which the SIGCHLDs of other tests' child processes cause now and then; these
/// use read(2) and retry when a signal interrupts it.
enum PipeReading {
    /// Reads `handle` until end of file.
    static func readToEnd(_ handle: FileHandle) -> Data {
        var data = Data()
        readChunks(handle) { data.append($0) }
        return data
    }

    /// Calls `chunk` with each piece read from `handle` until end of file. Blocks: run it on a thread of its own.
    static func readChunks(_ handle: FileHandle, _ chunk: (Data) -> Void) {
        let descriptor = handle.fileDescriptor
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count > 0 {
                chunk(Data(buffer[0..<count]))
            } else if count < 0, errno == EINTR {
                continue
            } else {
                return
            }
        }
    }
}
