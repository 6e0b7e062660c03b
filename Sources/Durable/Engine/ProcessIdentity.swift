import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// What identifies a running process well enough to tell, later and from another process on the same machine,
/// whether it is still alive: its host name, its process ID and (on Linux) the moment the kernel started it.
///
/// The start time is what makes a reused process ID harmless: a new process that happens to get the old one's ID
/// started at another moment.
struct ProcessIdentity: Sendable, Equatable {
    var host: String
    var processID: Int32
    /// The process's start time in clock ticks since boot (`/proc/<pid>/stat`, field 22); nil where unknown.
    var started: String?

    /// This process.
    static let current: ProcessIdentity = {
        let pid = getpid()
        return ProcessIdentity(host: hostName(), processID: pid, started: startTime(of: pid))
    }()

    /// Whether the process this identity names is still running. Meaningful only on this identity's host.
    ///
    /// A process that no longer exists, a zombie, or a process under the same ID that started at another moment
    /// is not alive. A process owned by another user (which `kill` may not signal) counts as alive.
    var isRunning: Bool {
        if kill(processID, 0) != 0 && errno == ESRCH { return false }
        #if os(Linux)
            guard let stat = Self.stat(of: processID) else { return false }  // gone between the two looks
            if stat.state == "Z" || stat.state == "X" { return false }
            if let started, stat.started != started { return false }
        #endif
        return true
    }

    /// The host name as the kernel has it (not a DNS lookup, which can take seconds).
    private static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "unknown-host" }
        let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return name.isEmpty ? "unknown-host" : name
    }

    private static func startTime(of pid: Int32) -> String? {
        #if os(Linux)
            return stat(of: pid)?.started
        #else
            return nil
        #endif
    }

    /// The state letter and start time from `/proc/<pid>/stat`. The command name (field 2) is in parentheses and
    /// may itself hold spaces or parentheses, so fields are counted from the last `)`.
    private static func stat(of pid: Int32) -> (state: String, started: String)? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = text.lastIndex(of: ")")
        else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // fields[0] is field 3 (state); field 22 (starttime) is fields[19].
        guard fields.count > 19 else { return nil }
        return (String(fields[0]), String(fields[19]))
    }
}
