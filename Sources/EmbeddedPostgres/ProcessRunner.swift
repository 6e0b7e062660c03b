import Dispatch
import Foundation
import Synchronization

/// What a finished child process left behind.
struct ProcessOutput: Sendable {
    /// The command as a shell-like line, for error messages.
    let commandLine: String
    /// The exit status (or the signal number when `terminatedBySignal`).
    let status: Int32
    /// Whether the process was killed by a signal rather than exiting.
    let terminatedBySignal: Bool
    /// Everything the process wrote to standard output.
    let stdout: String
    /// Everything the process wrote to standard error.
    let stderr: String

    /// Whether the process exited normally with status 0.
    var succeeded: Bool { !terminatedBySignal && status == 0 }

    /// Returns `self` when the process succeeded, else throws an error carrying its stderr (and stdout,
    /// because several PostgreSQL tools print their diagnosis there) so the reader sees why.
    /// Each `replacing` pair is substituted in the message, to keep secrets such as passwords out of logs.
    @discardableResult
    func check(_ what: String, hint: String? = nil, replacing: [(String, String)] = []) throws -> ProcessOutput {
        guard !succeeded else { return self }
        let how = terminatedBySignal ? "was killed by signal \(status)" : "exited with status \(status)"
        var message = "\(what) failed: `\(commandLine)` \(how)."
        let err = stderr.trimmingCharacters(in: .whitespacesAndNewlines)
        let out = stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        if !err.isEmpty { message += "\nstderr:\n\(err)" }
        if !out.isEmpty { message += "\nstdout:\n\(out)" }
        if let hint { message += "\n\(hint)" }
        for (secret, shown) in replacing where !secret.isEmpty {
            message = message.replacingOccurrences(of: secret, with: shown)
        }
        throw EmbeddedPostgresError(.commandFailed, message)
    }
}

/// Runs a child process to completion without blocking Swift's cooperative thread pool: the blocking pipe
/// reads and the wait for exit happen on Dispatch's global queues, and the caller is resumed once all three
/// are done.
enum ProcessRunner {
    /// Runs `executable` with `arguments`, with `input` as stdin (or /dev/null, so a child never waits on
    /// our terminal), and returns its exit status and captured output. Throws only if it cannot be launched.
    static func run(
        _ executable: String,
        _ arguments: [String],
        input: String? = nil,
        directory: String? = nil
    ) async throws -> ProcessOutput {
        let commandLine = ([executable] + arguments).map(ShellQuoting.quoteIfNeeded).joined(separator: " ")
        return try await withCheckedThrowingContinuation { continuation in
            let collected = Collected()
            let group = DispatchGroup()
            do {
                try launch(executable, arguments, input: input, directory: directory, into: collected, group: group)
            } catch {
                continuation.resume(throwing: error)
                return
            }
            group.notify(queue: .global()) {
                let result = collected.withLock { state in
                    ProcessOutput(
                        commandLine: commandLine,
                        status: state.status,
                        terminatedBySignal: state.bySignal,
                        stdout: String(decoding: state.stdout, as: UTF8.self),
                        stderr: String(decoding: state.stderr, as: UTF8.self))
                }
                continuation.resume(returning: result)
            }
        }
    }

    /// Starts a helper that must outlive us and whose output nobody reads (the watchdog), and waits only
    /// for the launcher itself (`setsid -f`, which forks and returns at once).
    static func runDetached(_ executable: String, _ arguments: [String]) async throws {
        #if canImport(Darwin)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments
            process.standardInput = FileHandle.nullDevice
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            process.currentDirectoryURL = URL(fileURLWithPath: "/", isDirectory: true)
            try process.run()
        #else
            let child = try PosixSpawn.spawn(
                executable, arguments, directory: "/", stdin: nil, stdout: .null, stderr: .null)
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                DispatchQueue.global().async {
                    _ = PosixSpawn.wait(child.pid)
                    continuation.resume()
                }
            }
        #endif
    }

    #if canImport(Darwin)
        /// Apple's Foundation tracks child exit with kqueue and spawns with POSIX_SPAWN_CLOEXEC_DEFAULT, so
        /// `Process` copes with children that daemonize (see PosixSpawn.swift for why Linux does not use it).
        private static func launch(
            _ executable: String, _ arguments: [String], input: String?, directory: String?,
            into collected: Collected, group: DispatchGroup
        ) throws {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments
            if let directory {
                process.currentDirectoryURL = URL(fileURLWithPath: directory, isDirectory: true)
            }
            let stdoutPipe = Pipe()
            let stderrPipe = Pipe()
            process.standardOutput = stdoutPipe
            process.standardError = stderrPipe
            process.standardInput =
                try input.map {
                    FileHandle(fileDescriptor: try InputFile.make($0), closeOnDealloc: true)
                } ?? FileHandle.nullDevice
            // Entered before `run()` so an instantly exiting child cannot leave the group before it is entered.
            group.enter()
            process.terminationHandler = { finished in
                collected.withLock {
                    $0.status = finished.terminationStatus
                    $0.bySignal = finished.terminationReason == .uncaughtSignal
                }
                group.leave()
            }
            do {
                try process.run()
            } catch {
                // Balance the group: libdispatch traps when a group is freed while still entered.
                group.leave()
                throw EmbeddedPostgresError(.system, "Could not launch \(executable): \(error)")
            }
            drain(stdoutPipe.fileHandleForReading, into: collected, \.stdout, group: group)
            drain(stderrPipe.fileHandleForReading, into: collected, \.stderr, group: group)
        }
    #else
        private static func launch(
            _ executable: String, _ arguments: [String], input: String?, directory: String?,
            into collected: Collected, group: DispatchGroup
        ) throws {
            let inputFile = try input.map(InputFile.make)
            // The child has its own copy once spawned (or never will); ours is not needed either way.
            defer { inputFile.map { _ = close($0) } }
            let child = try PosixSpawn.spawn(
                executable, arguments, directory: directory, stdin: inputFile, stdout: .pipe, stderr: .pipe)
            group.enter()
            DispatchQueue.global().async {
                let (status, signaled) = PosixSpawn.wait(child.pid)
                collected.withLock {
                    $0.status = status
                    $0.bySignal = signaled
                }
                group.leave()
            }
            drain(
                FileHandle(fileDescriptor: child.stdout, closeOnDealloc: true), into: collected, \.stdout, group: group)
            drain(
                FileHandle(fileDescriptor: child.stderr, closeOnDealloc: true), into: collected, \.stderr, group: group)
        }
    #endif

    /// Reads `handle` to EOF on a Dispatch thread. Both pipes are drained at once: a child that fills one
    /// pipe while we block on the other would otherwise deadlock.
    private static func drain(
        _ handle: FileHandle, into collected: Collected, _ field: WritableKeyPath<State, Data> & Sendable,
        group: DispatchGroup
    ) {
        group.enter()
        DispatchQueue.global().async {
            let data = PipeReading.readToEnd(handle)
            try? handle.close()
            collected.withLock { $0[keyPath: field] = data }
            group.leave()
        }
    }

    /// The pieces gathered from different Dispatch threads, guarded by one lock.
    fileprivate struct State {
        var status: Int32 = -1
        var bySignal = false
        var stdout = Data()
        var stderr = Data()
    }

    /// A lock-protected ``State`` shared by the reader, exit and completion closures.
    fileprivate final class Collected: Sendable {
        private let state = Mutex(State())

        func withLock<R>(_ body: (inout State) -> R) -> R {
            state.withLock { body(&$0) }
        }
    }
}
