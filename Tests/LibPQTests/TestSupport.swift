import EmbeddedPostgres
import Foundation
import LibPQ
import Logging
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One database per suite, created on first use and shared by that suite's tests (which run in parallel, so
/// each test names its own tables with ``uniqueName(_:)``).
final class SuiteDatabase: Sendable {
    private let prefix: String
    private let creation = Mutex<Task<String, any Error>?>(nil)

    init(prefix: String) {
        self.prefix = prefix
    }

    /// The database URL (with the user's password, when `DATABASE_URL` has one).
    func url() async throws -> String {
        let task = creation.withLock { current in
            if let current { return current }
            let task = Task { [prefix] in try await SharedDatabase.freshDatabase(prefix: prefix) }
            current = task
            return task
        }
        return try await task.value
    }

    /// A configuration for this database with a unique `application_name`, so tests can count their own
    /// backends in `pg_stat_activity`.
    func configuration(
        applicationName: String = uniqueName("libpq_test"),
        usePreparedStatements: Bool = true
    ) async throws -> PGConfiguration {
        PGConfiguration(
            connectionString: ConnectionString(try await url()),
            // Generous: at the start of a run every suite creates databases and connects at once, and a busy
            // server then takes seconds to start a backend (5 s once failed connects that only looked like hangs).
            connectTimeoutSeconds: 30,
            applicationName: applicationName,
            usePreparedStatements: usePreparedStatements
        )
    }

    /// A single connection to this database.
    func connect(usePreparedStatements: Bool = true) async throws -> PGConnection {
        try await PGConnection.connect(configuration(usePreparedStatements: usePreparedStatements))
    }
}

/// `prefix` plus a random lower-case suffix: a name no parallel test uses.
func uniqueName(_ prefix: String) -> String {
    let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789")
    return prefix + "_" + String((0..<10).map { _ in alphabet.randomElement()! })
}

let testLogger = Logger(label: "LibPQTests")

/// Raised by ``within(_:_:_:)`` when the body did not finish in time: a hang, not a slow run.
struct TimedOut: Error, CustomStringConvertible {
    var seconds: Double
    var what: String
    var description: String { "\(what) did not finish within \(seconds) s (hang?)" }
}

/// Runs `body` and fails with ``TimedOut`` if it has not finished within `seconds`. The body runs in its own
/// task and is cancelled (not awaited) on timeout, so a body stuck in a blocking call cannot hang the test.
/// Only for hang detection: bounds are generous and say nothing about speed.
func within<T: Sendable>(
    _ seconds: Double,
    _ what: String = "operation",
    _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    let once = Mutex<CheckedContinuation<T, any Error>?>(nil)
    let resume: @Sendable (Result<T, any Error>) -> Bool = { result in
        guard let continuation = once.withLock({ current -> CheckedContinuation<T, any Error>? in
            defer { current = nil }
            return current
        }) else { return false }
        continuation.resume(with: result)
        return true
    }
    return try await withCheckedThrowingContinuation { continuation in
        once.withLock { $0 = continuation }
        let work = Task {
            do { _ = resume(.success(try await body())) } catch { _ = resume(.failure(error)) }
        }
        Task {
            try? await Task.sleep(for: .seconds(seconds))
            if resume(.failure(TimedOut(seconds: seconds, what: what))) { work.cancel() }
        }
    }
}

/// Polls `condition` every 50 ms until it holds, failing with ``TimedOut`` after `seconds`.
func eventually(
    _ seconds: Double = 60,
    _ what: String,
    _ condition: @escaping @Sendable () async throws -> Bool
) async throws {
    try await within(seconds, what) {
        while try await !condition() {
            try await Task.sleep(for: .milliseconds(50))
        }
    }
}

/// The error `body` threw, as a ``PGError``; records an issue when it threw nothing or something else.
@discardableResult
func expectPostgresError<T>(
    _ comment: Comment? = nil,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () async throws -> T
) async -> PGError? {
    do {
        _ = try await body()
        Issue.record("expected a PGError, got success. \(comment.map { "\($0)" } ?? "")", sourceLocation: sourceLocation)
        return nil
    } catch let error as PGError {
        return error
    } catch {
        Issue.record("expected a PGError, got \(type(of: error)): \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

/// Every way an error can be shown: `description`, `debugDescription`/reflection and string interpolation.
func renderings(of error: any Error) -> [String] {
    [String(describing: error), String(reflecting: error), "\(error)", error.localizedDescription]
}

/// Seconds elapsed since `start`.
func seconds(since start: ContinuousClock.Instant) -> Double {
    let elapsed = ContinuousClock.now - start
    return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
}

/// A loopback TCP port nothing listens on: bound to find a free one, then released without listening.
func refusedLoopbackPort() throws -> Int {
    #if canImport(Glibc)
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    #else
    let fd = socket(AF_INET, SOCK_STREAM, 0)
    #endif
    guard fd >= 0 else { throw TimedOut(seconds: 0, what: "socket()") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = 0
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard bound == 0 else { throw TimedOut(seconds: 0, what: "bind()") }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// An ordered log that concurrent tasks append to.
actor Recorder<Element: Sendable> {
    private(set) var items: [Element] = []
    func append(_ item: Element) { items.append(item) }
}

/// A one-shot signal: `wait()` suspends until `open()` is called (or returns at once if it already was).
final class Gate: Sendable {
    private let state = Mutex<(opened: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func open() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.opened = true
            defer { state.waiters = [] }
            return state.waiters
        }
        waiters.forEach { $0.resume() }
    }

    func wait() async {
        await withCheckedContinuation { continuation in
            let resumeNow = state.withLock { state -> Bool in
                if state.opened { return true }
                state.waiters.append(continuation)
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }
}

/// Counts the backends of `applicationName` (seen from a separate connection).
func backendCount(applicationName: String, admin: PGConnection) async throws -> Int {
    try await admin.query(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", [applicationName]
    ).first?.int(0) ?? -1
}

/// Terminates backend `pid` and waits until it has gone from `pg_stat_activity`.
func terminateBackend(_ pid: Int, admin: PGConnection) async throws {
    let terminated = try await admin.query("SELECT pg_terminate_backend($1)", [pid]).first?.bool(0)
    #expect(terminated == true, "pg_terminate_backend(\(pid)) should find the backend")
    try await eventually(60, "backend \(pid) to exit") {
        try await admin.query("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", [pid]).first?.int(0) == 0
    }
}
