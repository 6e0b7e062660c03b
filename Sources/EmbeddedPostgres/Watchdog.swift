import Foundation

/// A tiny detached shell process that removes a cluster once this process is gone, however it ended.
///
/// Swift Testing has no global teardown and a crashed or SIGKILLed process runs no code at all, so cleanup
/// cannot live in this process. The watchdog polls our pid once a second; when it vanishes it stops the
/// server (immediate mode: the data is throwaway) and deletes the folder. It also exits quietly once the
/// folder is gone, which is what a normal ``EmbeddedPostgres/stop()`` leaves behind.
enum Watchdog {
    /// Launches the watchdog for the cluster in `rootDirectory` and returns without waiting for it.
    ///
    /// It runs as the current user, not the cluster user: as root, a `postgres`-owned `kill -0` on our pid
    /// would fail with EPERM and look like "parent gone". Stopping the server goes through `runuser` like
    /// every other `pg_ctl` call.
    static func launch(
        rootDirectory: String,
        dataDirectory: String,
        pgCtl: String,
        user: ClusterUser
    ) async throws {
        let pid = ProcessInfo.processInfo.processIdentifier
        let root = ShellQuoting.quote(rootDirectory)
        let stop = user.shellLine(pgCtl, ["-D", dataDirectory, "-m", "immediate", "-w", "stop"])
        // Ignoring HUP/INT/TERM keeps a Ctrl-C aimed at `swift test` from killing the watchdog along with
        // the tests, which is exactly when it has work to do.
        let script = """
            trap '' HUP INT TERM
            while kill -0 \(pid) 2>/dev/null && [ -d \(root) ]; do sleep 1; done
            if [ -d \(root) ]; then
              if [ -f \(ShellQuoting.quote(dataDirectory + "/postmaster.pid")) ]; then \(stop) >/dev/null 2>&1; fi
              rm -rf \(root)
            fi
            """
        // `setsid -f` puts the watchdog in its own session (no terminal signals, no process-group kills) and
        // forks, so it is not our child and we need not reap it. macOS has no setsid(1); there a shell starts
        // it in the background under `nohup` and returns at once, and the traps do the rest.
        let setsid =
            ExecutableSearch.onPath("setsid")
            ?? ["/usr/bin/setsid", "/bin/setsid"].first { FileManager.default.isExecutableFile(atPath: $0) }
        do {
            if let setsid {
                try await ProcessRunner.runDetached(setsid, ["-f", "/bin/sh", "-c", script])
            } else {
                let background = "nohup /bin/sh -c \(ShellQuoting.quote(script)) </dev/null >/dev/null 2>&1 &"
                try await ProcessRunner.runDetached("/bin/sh", ["-c", background])
            }
        } catch {
            throw EmbeddedPostgresError(
                .system,
                "Could not start the cleanup watchdog for \(rootDirectory): \(error)")
        }
    }
}
