import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A child's standard input, prepared before the child starts.
///
/// Why not a pipe: if the child exits before reading (psql when the server is down), writing to the pipe
/// raises SIGPIPE, which kills the whole host process (a test run) unless it happens to ignore that signal.
/// A file has no reader to lose; it is unlinked at once, so nothing is left behind.
enum InputFile {
    /// Returns a descriptor open for reading at offset 0 on an anonymous file holding `text`.
    static func make(_ text: String) throws -> Int32 {
        var template = Array("/tmp/durable-pg-stdin-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw failure("mkstemp") }
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        let bytes = Array(text.utf8)
        var written = 0
        while written < bytes.count {
            let result = bytes[written...].withUnsafeBytes { write(fd, $0.baseAddress!, $0.count) }
            if result < 0 {
                if errno == EINTR { continue }
                let error = failure("write")
                close(fd)
                throw error
            }
            written += result
        }
        guard lseek(fd, 0, SEEK_SET) == 0 else {
            let error = failure("lseek")
            close(fd)
            throw error
        }
        return fd
    }

    private static func failure(_ call: String) -> EmbeddedPostgresError {
        EmbeddedPostgresError(
            .system,
            "Could not prepare a child's input (\(call)): \(String(cString: strerror(errno)))")
    }
}
