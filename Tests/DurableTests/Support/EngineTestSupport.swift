import Durable
import EmbeddedPostgres
import Foundation
import LibPQ
import Logging
import Synchronization
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

// Helpers for the Engine*, Crash* and BadInput* suites: what they read from a test's database, runtimes with a
// log the test can read, gates that hold a workflow at a known point, counters of how often code really ran, and a
// `DurableTestWorker` child process that can be SIGKILLed for real. Fresh databases, time bounds and unique IDs
// come from the TestSupport target.

// MARK: - Database

extension TestDatabase {
    /// Creates the table the worker's steps write their effects to: `dbos_ledger.ledger`.
    func createLedger(schema: String = "dbos") async throws {
        let quoted = SQLIdentifier.quote(schema + "_ledger")
        try await query("CREATE SCHEMA IF NOT EXISTS \(quoted)")
        try await query("CREATE TABLE IF NOT EXISTS \(quoted).ledger (workflow_id text, step int)")
    }

    /// How often each step's effect ran for `id`, by step number.
    func ledger(_ id: String, schema: String = "dbos") async throws -> [Int: Int] {
        let rows = try await query(
            "SELECT step, count(*) FROM \(SQLIdentifier.quote(schema + "_ledger")).ledger WHERE workflow_id = $1 GROUP BY step",
            [id]
        )
        var counts: [Int: Int] = [:]
        for row in rows.rows { counts[row.int(0) ?? -1] = row.int(1) }
        return counts
    }

    /// The function IDs and names of a workflow's recorded steps, in order.
    func steps(_ id: String) async throws -> [(id: Int, name: String)] {
        let rows = try await query(
            "SELECT function_id, function_name FROM dbos.operation_outputs WHERE workflow_uuid = $1 ORDER BY function_id",
            [id])
        return rows.rows.map { ($0.int(0) ?? -1, $0.string(1) ?? "") }
    }

    /// `workflow_status.status` of `id`.
    func status(_ id: String) async throws -> String? {
        try await value("SELECT status FROM dbos.workflow_status WHERE workflow_uuid = $1", [id])
    }

    /// The JSON object stored in a text column, parsed (nil when NULL).
    func json(_ sql: String, _ parameters: [any PGParameter] = []) async throws -> [String: Any]? {
        guard let text = try await value(sql, parameters) else { return nil }
        return try JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed]) as? [String: Any]
    }

    /// The recorded error of a finished workflow, parsed from `workflow_output.error`.
    func workflowError(_ id: String) async throws -> [String: Any]? {
        try await json("SELECT error FROM dbos.workflow_output WHERE workflow_uuid = $1", [id])
    }
}

// MARK: - Runtimes

/// Log lines a runtime wrote, so a test can check that something was logged (and the output stays quiet).
final class CapturedLog: Sendable {
    private let lines = Mutex<[String]>([])

    func append(_ line: String) { lines.withLock { $0.append(line) } }
    var all: [String] { lines.withLock { $0 } }
    func contains(_ text: String) -> Bool { all.contains { $0.contains(text) } }

    /// A logger writing here at `level` and above.
    func logger(level: Logger.Level = .info) -> Logger {
        var logger = Logger(label: "engine-tests") { _ in Handler(log: self) }
        logger.logLevel = level
        return logger
    }

    private struct Handler: LogHandler {
        let log: CapturedLog
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .info
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            let all = metadata.merging(event.metadata ?? [:]) { _, new in new }
            let rendered = all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            log.append("\(event.level) \(event.message) \(rendered)\(event.error.map { " error=\($0)" } ?? "")")
        }
    }
}

/// A runtime for tests, not yet launched.
func makeEngineRuntime(
    _ database: TestDatabase,
    executor: String,
    applicationVersion: String = "engine-tests",
    maxPayloadBytes: Int = 32 * 1024 * 1024,
    maxRecoveryAttempts: Int = 100,
    log: CapturedLog = CapturedLog(),
    register: (DurableRuntime) -> Void
) -> DurableRuntime {
    let runtime = DurableRuntime(
        configuration: DurableConfiguration(
            databaseURL: database.url,
            executorID: executor,
            applicationVersion: applicationVersion,
            // Few connections: the whole test process shares one server's max_connections with every other suite.
            maxConnections: 4,
            maxRecoveryAttempts: maxRecoveryAttempts,
            maxPayloadBytes: maxPayloadBytes
        ),
        logger: log.logger()
    )
    register(runtime)
    return runtime
}

/// Expects `body` to throw a ``DurableError`` and returns it (nil, with a recorded issue, otherwise).
@discardableResult
func expectDurableError<T>(
    _ code: DurableError.Code,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () async throws -> T
) async -> DurableError? {
    do {
        let value = try await body()
        Issue.record("expected DurableError.\(code), got the value \(value)", sourceLocation: sourceLocation)
        return nil
    } catch let error as DurableError {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        return error
    } catch {
        Issue.record("expected DurableError.\(code), got \(type(of: error)): \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

// MARK: - Gates and counters

/// Holds workflows at a point until the test opens their gate: one ``Gate`` per key (the workflow ID), and a
/// count of the runs that reached it. Waiting ends when the task is cancelled, so a runtime shutdown interrupts a
/// held workflow (it then stays PENDING, as after a crash).
final class EngineGates: Sendable {
    static let shared = EngineGates()

    private struct State {
        var gates: [String: Gate] = [:]
        var arrivals: [String: Int] = [:]
    }

    private let state = Mutex(State())

    /// The gate of `key`, created on first use (by the waiter or by the test opening it, whichever comes first).
    private func gate(_ key: String) -> Gate {
        state.withLock { state in
            if let gate = state.gates[key] { return gate }
            let gate = Gate()
            state.gates[key] = gate
            return gate
        }
    }

    func wait(_ key: String) async throws {
        state.withLock { $0.arrivals[key, default: 0] += 1 }
        try await gate(key).waitUnlessCancelled()
    }

    func open(_ key: String) { gate(key).open() }

    func arrivals(_ key: String) -> Int { state.withLock { $0.arrivals[key] ?? 0 } }

    /// Waits (with a hang bound, not a speed bound) until `count` runs reached the gate.
    func waitForArrival(_ key: String, count: Int = 1, timeout: Duration = .seconds(60)) async -> Bool {
        await eventually(timeout: timeout, every: .milliseconds(5)) { arrivals(key) >= count }
    }
}

/// How often a piece of code really ran, by key, across the test process.
enum RunCounts {
    private static let counts = Mutex<[String: Int]>([:])
    static func note(_ key: String) { counts.withLock { $0[key, default: 0] += 1 } }
    static func count(_ key: String) -> Int { counts.withLock { $0[key] ?? 0 } }
}

// MARK: - Worker process

/// A `DurableTestWorker` child process, found beside the test bundle: its stdout read line by line, its stderr
/// (the runtime's log) kept for diagnosis, killed with a real SIGKILL.
final class WorkerProcess: Sendable {
    private final class Lines: Sendable {
        let complete = Mutex<[String]>([])
        let partial = Mutex(LineBuffer())
        let ended = Atomic<Bool>(false)
        /// Called on the reading thread with every line so far, each time new lines arrive.
        let observer = Mutex<(@Sendable ([String]) -> Void)?>(nil)

        func take(_ chunk: Data) {
            let found = partial.withLock { $0.lines(adding: chunk) }
            guard !found.isEmpty else { return }
            let all = complete.withLock { lines in
                lines.append(contentsOf: found)
                return lines
            }
            observer.withLock { $0 }?(all)
        }

        /// Reads `fd` to its end on a thread of its own (see ``PipeReading``). Closes `fd` at the end.
        func drain(_ fd: Int32) {
            let thread = Thread { [self] in
                PipeReading.readChunks(fd) { take($0) }
                close(fd)
                ended.store(true, ordering: .releasing)
            }
            thread.start()
        }
    }

    /// How the process ended.
    typealias Exit = ChildProcess.Exit

    let name: String
    let pid: Int32
    private let process: ChildProcess
    private let stdout = Lines()
    private let stderr = Lines()
    /// Set once ``kill(when:)``'s condition fires (a class, so the reading thread's closure can hold it).
    private final class Flag: Sendable {
        let value = Atomic<Bool>(false)
        let at = Mutex<Date?>(nil)
    }
    private let conditionMet = Flag()

    /// Starts a worker with `arguments`. `name` labels it in failure messages; `executable` names the worker
    /// program (the queue crash tests run `DurableQueueWorker`).
    init(_ name: String, _ arguments: [String], executable: String = "DurableTestWorker") throws {
        let path = BuiltExecutable.path(executable)
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw WorkerError("\(executable) not found at \(path); build with `swift build --build-tests` first")
        }
        self.name = name
        // ChildProcess, not Foundation's Process: see ChildProcess for the exit that Process missed for 30 s.
        process = try ChildProcess(path, arguments)
        pid = process.pid
        // Our own copies of the read ends: the thread reading each closes it; the handles may go.
        stdout.drain(fcntl(process.standardOutput!.fileDescriptor, F_DUPFD_CLOEXEC, 0))
        stderr.drain(fcntl(process.standardError!.fileDescriptor, F_DUPFD_CLOEXEC, 0))
    }

    /// A test that fails midway must not leave a worker behind.
    deinit {
        process.signal(SIGKILL)
    }

    /// Every stdout line so far.
    var lines: [String] { stdout.complete.withLock { $0 } }
    /// Every stderr line so far (the runtime's log).
    var logLines: [String] { stderr.complete.withLock { $0 } }
    /// The stdout lines starting with `prefix`.
    func lines(startingWith prefix: String) -> [String] { lines.filter { $0.hasPrefix(prefix) } }

    /// Waits until a stdout line starts with `line` and returns it; nil (with an issue recorded) after `timeout`
    /// or when the process exits without printing it.
    @discardableResult
    func waitFor(
        line prefix: String, timeout: Duration = .seconds(90), sourceLocation: SourceLocation = #_sourceLocation
    ) async -> String? {
        await waitFor(anyOf: [prefix], timeout: timeout, sourceLocation: sourceLocation)
    }

    /// Waits until a stdout line starts with one of `prefixes` and returns the first such line.
    @discardableResult
    func waitFor(
        anyOf prefixes: [String], timeout: Duration = .seconds(90), sourceLocation: SourceLocation = #_sourceLocation
    ) async -> String? {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        func found() -> String? { lines.first { line in prefixes.contains { line.hasPrefix($0) } } }
        while true {
            if let line = found() { return line }
            let exited = process.exit != nil
            if exited || ContinuousClock.now >= deadline {
                // The last lines may still be in the pipe when the exit is noticed: read it to its end first.
                if exited { await outputEnded(timeout: .seconds(2)) }
                if let line = found() { return line }
                Issue.record(
                    """
                    worker \(name) \(exited ? "exited" : "timed out") without printing \(prefixes)
                    stdout: \(lines.joined(separator: " | "))
                    stderr tail: \(logLines.suffix(15).joined(separator: "\n"))
                    """, sourceLocation: sourceLocation)
                return nil
            }
            try? await Task.sleep(for: .milliseconds(10))
        }
    }

    /// Waits until both output pipes reached their end (the process and its copies of them are gone).
    @discardableResult
    func outputEnded(timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while ContinuousClock.now < deadline {
            if stdout.ended.load(ordering: .acquiring) && stderr.ended.load(ordering: .acquiring) { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return false
    }

    var isRunning: Bool { process.isRunning }

    /// SIGKILLs the worker from the thread reading its stdout, the moment its lines so far satisfy
    /// `condition`: no polling delay, so a kill meant to land mid-run does, however loaded the machine is
    /// (a poll every 5 ms missed the moment in loaded full runs). ``killedOnCondition`` tells whether it fired.
    func kill(when condition: @escaping @Sendable ([String]) -> Bool) {
        let check: @Sendable ([String]) -> Void = { [process, conditionMet] lines in
            guard condition(lines), !conditionMet.value.exchange(true, ordering: .acquiringAndReleasing) else { return }
            process.signal(SIGKILL)
            conditionMet.at.withLock { $0 = Date() }
        }
        stdout.observer.withLock { $0 = check }
        check(lines)
    }

    /// Whether ``kill(when:)``'s condition was met and the SIGKILL sent.
    var killedOnCondition: Bool { conditionMet.value.load(ordering: .acquiring) }
    /// This machine's wall-clock time just after ``kill(when:)`` sent its SIGKILL; nil until then.
    var killedOnConditionAt: Date? { conditionMet.at.withLock { $0 } }

    /// Sends a real SIGKILL (no cleanup, no flush) and waits until the process is gone.
    @discardableResult
    func kill(sourceLocation: SourceLocation = #_sourceLocation) async -> Exit? {
        process.signal(SIGKILL)
        let ended = await waitForExit(timeout: .seconds(30), sourceLocation: sourceLocation)
        #expect(
            ended?.killedBySIGKILL == true, "worker \(name) ended with \(String(describing: ended)), not SIGKILL",
            sourceLocation: sourceLocation)
        return ended
    }

    /// Waits until the process exits on its own (nil, with an issue recorded, after `timeout`).
    @discardableResult
    func waitForExit(timeout: Duration = .seconds(90), sourceLocation: SourceLocation = #_sourceLocation) async -> Exit?
    {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while ContinuousClock.now < deadline {
            if let ended = process.exit {
                // Callers read the output next: let the reader threads take its last bytes. (The end of a pipe
                // can come later than the exit if a worker another test started meanwhile inherited its write
                // end; what this process wrote is in the pipe by now either way.)
                await outputEnded(timeout: .seconds(2))
                return ended
            }
            try? await Task.sleep(for: .milliseconds(10))
        }
        Issue.record(
            "worker \(name) did not exit within \(timeout); stdout: \(lines.joined(separator: " | "))",
            sourceLocation: sourceLocation)
        process.signal(SIGKILL)
        return nil
    }
}

struct WorkerError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// The flags every crash test passes to the worker.
func workerFlags(_ database: TestDatabase, id: String, executor: String = "crash-worker", steps: Int = 3) -> [String] {
    ["--url", database.url, "--executor", executor, "--workflow", id, "--steps", "\(steps)"]
}
