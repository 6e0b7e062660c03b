#if !canImport(Darwin)
    import Foundation

    #if canImport(Glibc)
        import Glibc
    #elseif canImport(Musl)
        import Musl
    #endif

    /// Starting and reaping child processes with `posix_spawn` on Linux.
    ///
    /// Why not Foundation's `Process` here: swift-corelibs-foundation notices that a child ended through EOF on
    /// a socket it deliberately leaves open in the child. Whatever the child daemonizes inherits that socket,
    /// so `pg_ctl start` (whose postmaster outlives it) never counts as finished and its caller hangs forever.
    /// Here every descriptor above stderr is closed in the child and the exit is observed with `waitpid`.
    enum PosixSpawn {
        /// What the child's stdout or stderr is connected to.
        enum Target: Sendable {
            /// A new pipe, whose read end is returned to the caller.
            case pipe
            /// /dev/null, for helpers whose output nobody would read (a pipe would never see EOF).
            case null
            /// The same descriptor as ours (our stdout for the child's stdout, our stderr for its stderr).
            case inherit
            /// A file, created if missing and appended to.
            case file(String)

            var isPipe: Bool {
                if case .pipe = self { return true }
                return false
            }
        }

        /// A started child and the parent's ends of its output pipes (`-1` where there is no pipe).
        struct Child {
            let pid: pid_t
            let stdout: Int32
            let stderr: Int32
        }

        /// Starts `executable` with `arguments` in `directory` (when given; ignored on C libraries without
        /// `posix_spawn_file_actions_addchdir_np`) with `environment` (the current one when nil). `stdin` is a
        /// descriptor to read from (see ``InputFile``), or `nil` for /dev/null. The child keeps no other
        /// descriptor of ours.
        static func spawn(
            _ executable: String,
            _ arguments: [String],
            directory: String?,
            environment: [String: String]? = nil,
            stdin: Int32?,
            stdout: Target,
            stderr: Target
        ) throws -> Child {
            var opened: [Int32] = []
            func makePipe() throws -> (read: Int32, write: Int32) {
                var fds: [Int32] = [-1, -1]
                guard pipe(&fds) == 0 else { throw systemError("pipe") }
                // Close-on-exec so no other child spawned meanwhile (from any thread) inherits our ends.
                _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
                _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
                opened += fds
                return (fds[0], fds[1])
            }
            do {
                let out = stdout.isPipe ? try makePipe() : nil
                let err = stderr.isPipe ? try makePipe() : nil

                var actions = posix_spawn_file_actions_t()
                posix_spawn_file_actions_init(&actions)
                defer { posix_spawn_file_actions_destroy(&actions) }
                if let stdin {
                    posix_spawn_file_actions_adddup2(&actions, stdin, 0)
                } else {
                    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
                }
                for (target, pipe, descriptor) in [(stdout, out, Int32(1)), (stderr, err, Int32(2))] {
                    switch target {
                    case .pipe: posix_spawn_file_actions_adddup2(&actions, pipe!.write, descriptor)
                    case .null: posix_spawn_file_actions_addopen(&actions, descriptor, "/dev/null", O_WRONLY, 0)
                    case .inherit: break
                    case .file(let path):
                        posix_spawn_file_actions_addopen(
                            &actions, descriptor, path, O_WRONLY | O_CREAT | O_APPEND, 0o644)
                    }
                }
                try closeInheritedDescriptors(&actions)
                if let directory, let addchdir = Symbols.addchdir {
                    _ = directory.withCString { addchdir(&actions, $0) }
                }

                var attributes = posix_spawnattr_t()
                posix_spawnattr_init(&attributes)
                defer { posix_spawnattr_destroy(&attributes) }
                // Threads of this process may block or ignore signals; a child (a server, a watchdog) must start
                // with the usual defaults or `pg_ctl stop` and `kill` would not work on it.
                var emptyMask = sigset_t()
                sigemptyset(&emptyMask)
                var defaults = sigset_t()
                sigemptyset(&defaults)
                for signal in [SIGPIPE, SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGCHLD, SIGUSR1, SIGUSR2, SIGALRM] {
                    sigaddset(&defaults, signal)
                }
                posix_spawnattr_setsigmask(&attributes, &emptyMask)
                posix_spawnattr_setsigdefault(&attributes, &defaults)
                posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

                let argv = ([executable] + arguments).map { strdup($0) } + [nil]
                let envp =
                    (environment ?? ProcessInfo.processInfo.environment).map { strdup("\($0.key)=\($0.value)") } + [nil]
                defer {
                    argv.forEach { free($0) }
                    envp.forEach { free($0) }
                }
                var pid = pid_t()
                let status = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
                guard status == 0 else {
                    throw EmbeddedPostgresError(
                        .system,
                        "Could not launch \(executable): \(String(cString: strerror(status)))")
                }
                // The child has its copies; keeping ours would stop the readers from ever seeing EOF.
                for fd in [out?.write, err?.write].compactMap({ $0 }) { close(fd) }
                return Child(pid: pid, stdout: out?.read ?? -1, stderr: err?.read ?? -1)
            } catch {
                opened.forEach { close($0) }
                throw error
            }
        }

        /// Blocks until `pid` exits and returns its exit status, or its signal number with `signaled` set.
        static func wait(_ pid: pid_t) -> (status: Int32, signaled: Bool) {
            var raw: Int32 = 0
            while waitpid(pid, &raw, 0) == -1 {
                if errno != EINTR { return (-1, false) }
            }
            let signal = raw & 0x7f
            return signal == 0 ? ((raw >> 8) & 0xff, false) : (signal, true)
        }

        /// Makes the child close every descriptor above stderr, whoever opened it and whether or not it is
        /// close-on-exec (Foundation and other libraries leave some without). `closefrom` does it atomically
        /// where glibc has it (2.34+); otherwise the descriptors open right now are listed from /proc.
        private static func closeInheritedDescriptors(_ actions: inout posix_spawn_file_actions_t) throws {
            if let addclosefrom = Symbols.addclosefrom {
                guard addclosefrom(&actions, 3) == 0 else {
                    throw systemError("posix_spawn_file_actions_addclosefrom_np")
                }
                return
            }
            let open = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
            for fd in open.compactMap({ Int32($0) }) where fd > 2 {
                posix_spawn_file_actions_addclose(&actions, fd)
            }
        }

        private static func systemError(_ call: String) -> EmbeddedPostgresError {
            EmbeddedPostgresError(.system, "\(call) failed: \(String(cString: strerror(errno)))")
        }

        /// GNU extensions looked up at run time, so the module still builds and runs against older C libraries.
        private enum Symbols {
            typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
            typealias AddChdir =
                @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32

            static let addclosefrom: AddCloseFrom? = lookup("posix_spawn_file_actions_addclosefrom_np")
            static let addchdir: AddChdir? = lookup("posix_spawn_file_actions_addchdir_np")

            private static func lookup<T>(_ name: String) -> T? {
                // A null handle is RTLD_DEFAULT on glibc and musl: search every loaded library.
                guard let symbol = dlsym(nil, name) else { return nil }
                return unsafeBitCast(symbol, to: T.self)
            }
        }
    }
#endif
