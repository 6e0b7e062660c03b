#if !canImport(Darwin)
    import Dispatch
    import Foundation
    import Synchronization

    #if canImport(Glibc)
        import Glibc
    #elseif canImport(Musl)
        import Musl
    #endif

    /// A child process for tests, the demo and the benchmarks (worker processes to SIGKILL, CLIs to run): started
    /// with `posix_spawn`, keeping none of our descriptors but stdin/stdout/stderr, and reaped by a thread of its
    /// own blocked in `waitid` on its pid.
    ///
    /// Why not Foundation's `Process`: on Linux it learns that a child ended from EOF on a socket the child
    /// inherits, and nothing stops a second child, spawned at the same moment from another thread, from
    /// inheriting that socket too. The first child's exit then goes unnoticed until the second one ends as
    /// well: under load a crash test waited 30 s for a worker it had SIGKILLed, and a test blocked in such a wait
    /// on Swift's two-thread cooperative pool can stall every other test with it.
    public final class ChildProcess: Sendable {
        /// Where the child's stdout or stderr goes.
        public enum Output: Sendable {
            /// A new pipe; read it from ``standardOutput`` / ``standardError``.
            case pipe
            /// /dev/null.
            case null
            /// Wherever ours goes.
            case inherit
            /// Appended to a file, created if missing.
            case file(String)
        }

        /// How a child ended.
        public struct Exit: Sendable, Equatable, CustomStringConvertible {
            /// The exit status, or the signal number when ``signaled``.
            public let status: Int32
            /// Whether a signal ended it.
            public let signaled: Bool

            /// An ending: `status` is the exit status, or the signal number when `signaled`.
            public init(status: Int32, signaled: Bool) {
                self.status = status
                self.signaled = signaled
            }

            /// Whether SIGKILL ended it.
            public var killedBySIGKILL: Bool { signaled && status == SIGKILL }
            /// Whether it exited with status 0.
            public var succeeded: Bool { !signaled && status == 0 }

            public var description: String { signaled ? "signal \(status)" : "exit \(status)" }
        }

        /// The child's process ID.
        public let pid: Int32
        /// The read end of the child's stdout pipe (nil unless started with `.pipe`); closed when this object goes.
        public let standardOutput: FileHandle?
        /// The read end of the child's stderr pipe (nil unless started with `.pipe`); closed when this object goes.
        public let standardError: FileHandle?

        /// How the child ended, shared with the reaper thread (which must not hold `self`, or the pipes above could
        /// never close while the child runs).
        private final class Ending: Sendable {
            let exit = Mutex<Exit?>(nil)
            /// Entered at the start, left once the child is reaped: blocking and async waiters both wait on it.
            let reaped = DispatchGroup()
        }
        private let ending = Ending()

        /// Starts `executable` (a path) with `arguments`, `environment` (ours when nil) and stdin from /dev/null.
        /// Throws ``EmbeddedPostgresError`` when it cannot be started.
        public init(
            _ executable: String,
            _ arguments: [String] = [],
            environment: [String: String]? = nil,
            directory: String? = nil,
            standardOutput: Output = .pipe,
            standardError: Output = .pipe
        ) throws {
            let child = try PosixSpawn.spawn(
                executable, arguments, directory: directory, environment: environment, stdin: nil,
                stdout: Self.target(standardOutput), stderr: Self.target(standardError))
            pid = child.pid
            self.standardOutput =
                child.stdout >= 0 ? FileHandle(fileDescriptor: child.stdout, closeOnDealloc: true) : nil
            self.standardError =
                child.stderr >= 0 ? FileHandle(fileDescriptor: child.stderr, closeOnDealloc: true) : nil
            let ending = self.ending
            ending.reaped.enter()
            let reaper = Thread { [pid] in
                // Wait without reaping, then reap under the lock `signal` takes: until then the child is a zombie that
                // keeps its pid, so a signal can never reach another process that reused it.
                var info = siginfo_t()
                while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) == -1, errno == EINTR {}
                ending.exit.withLock { $0 = Self.reap(pid) }
                ending.reaped.leave()
            }
            reaper.name = "reaper \(pid)"
            reaper.start()
        }

        /// How it ended; nil while it runs.
        public var exit: Exit? { ending.exit.withLock { $0 } }

        /// Whether it still runs (it has not been reaped yet).
        public var isRunning: Bool { exit == nil }

        /// Sends `signal` (SIGKILL unless told otherwise) unless it has already been reaped.
        public func signal(_ signal: Int32 = SIGKILL) {
            // Under the lock, so the pid cannot have been reaped (and perhaps reused) in between.
            ending.exit.withLock { exit in
                if exit == nil { _ = kill(pid, signal) }
            }
        }

        /// Blocks the calling thread until the child ends. Never call it on Swift's cooperative pool.
        @discardableResult
        public func waitUntilExit() -> Exit {
            ending.reaped.wait()
            return exit!
        }

        /// Blocks the calling thread until the child ends or `timeout` passes (then nil).
        public func waitUntilExit(timeout: Duration) -> Exit? {
            let (seconds, attoseconds) = timeout.components
            let nanoseconds = Int(seconds) * 1_000_000_000 + Int(attoseconds / 1_000_000_000)
            guard ending.reaped.wait(timeout: .now() + .nanoseconds(nanoseconds)) == .success else { return nil }
            return exit
        }

        /// Suspends until the child ends.
        @discardableResult
        public func exited() async -> Exit {
            await withCheckedContinuation { (continuation: CheckedContinuation<Exit, Never>) in
                ending.reaped.notify(queue: .global()) { [ending] in
                    continuation.resume(returning: ending.exit.withLock { $0 }!)
                }
            }
        }

        /// Reaps the exited child and says how it ended.
        private static func reap(_ pid: Int32) -> Exit {
            let (status, signaled) = PosixSpawn.wait(pid)
            return Exit(status: status, signaled: signaled)
        }

        private static func target(_ output: Output) -> PosixSpawn.Target {
            switch output {
            case .pipe: .pipe
            case .null: .null
            case .inherit: .inherit
            case .file(let path): .file(path)
            }
        }
    }
#endif
