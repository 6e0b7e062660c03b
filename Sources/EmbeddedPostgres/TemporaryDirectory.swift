import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Creating the private folder a cluster lives in.
enum TemporaryDirectory {
    /// Makes a new, uniquely named, mode-0700 directory and returns its absolute path.
    ///
    /// The parent is the user's temporary directory, except for root (whose `TMPDIR` may be unreadable to
    /// `postgres`) and except when that path is so long that the Unix socket path `DIR/.s.PGSQL.NNNNN`
    /// would exceed the ~104-byte `sun_path` limit (macOS's `/var/folders/...` comes close): then `/tmp`.
    static func create(asRoot: Bool) throws -> String {
        var parent = asRoot ? "/tmp" : FileManager.default.temporaryDirectory.path
        while parent.count > 1 && parent.hasSuffix("/") { parent.removeLast() }
        if parent.utf8.count + "/durable-pg-XXXXXX/.s.PGSQL.65535".utf8.count > 100 { parent = "/tmp" }
        var template = Array((parent + "/durable-pg-XXXXXX").utf8CString)
        let created = template.withUnsafeMutableBufferPointer { buffer -> String? in
            guard let result = mkdtemp(buffer.baseAddress!) else { return nil }
            return String(cString: result)
        }
        guard let created else {
            throw EmbeddedPostgresError(
                .system,
                "Could not create a temporary directory in \(parent): \(String(cString: strerror(errno)))")
        }
        return created
    }
}
