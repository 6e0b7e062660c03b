import Dispatch
import EmbeddedPostgres
import Foundation

/// Reading a child process's pipe from async code without blocking Swift's cooperative pool (two threads on a
/// small machine): the blocking read runs on a Dispatch thread and the caller awaits it.
enum PipeReads {
    /// Everything the pipe delivers until its writer closes it.
    static func toEnd(_ handle: FileHandle) async -> Data {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(returning: PipeReading.readToEnd(handle)) }
        }
    }

    /// The next bytes the pipe delivers; empty once its writer closed it. (Not `availableData`, which crashes
    /// when a signal interrupts its read; see `PipeReading`.)
    static func next(_ handle: FileHandle) async -> Data {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(returning: PipeReading.readChunk(handle.fileDescriptor)) }
        }
    }
}
