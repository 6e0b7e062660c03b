import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The operating-system user the cluster runs as. PostgreSQL refuses to run as root, so when this process is
/// root the tools run as `postgres` through `runuser`; otherwise they run as ourselves.
struct ClusterUser: Sendable {
    /// The account to switch to, with its ids and the `runuser` binary; `nil` means "stay as we are".
    struct Switch: Sendable {
        let name: String
        let uid: uid_t
        let gid: gid_t
        let runuser: String
    }

    let switchTo: Switch?

    /// Runs everything as the current user: right for a non-root process, and for `psql` against an
    /// external server (which does not care who we are).
    static let current = ClusterUser(switchTo: nil)

    /// The user for a new cluster: ourselves, or `postgres` via `runuser` when we are root.
    static func forCluster() throws -> ClusterUser {
        guard geteuid() == 0 else { return .current }
        let name = "postgres"
        guard let entry = getpwnam(name) else {
            throw EmbeddedPostgresError(
                .noUnprivilegedUser,
                """
                Running as root, and PostgreSQL refuses to run as root, but there is no `\(name)` user to run \
                it as. Create one (`useradd --system --create-home \(name)`; installing the `postgresql` \
                package also does), run as a non-root user, or set DATABASE_URL to an existing server.
                """)
        }
        let runuser =
            ExecutableSearch.onPath("runuser")
            ?? ["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"].first {
                FileManager.default.isExecutableFile(atPath: $0)
            }
        guard let runuser else {
            throw EmbeddedPostgresError(
                .noUnprivilegedUser,
                """
                Running as root, and PostgreSQL refuses to run as root, but `runuser` (util-linux) was not \
                found to switch to the `\(name)` user. Install util-linux, run as a non-root user, or set \
                DATABASE_URL to an existing server.
                """)
        }
        return ClusterUser(
            switchTo: Switch(
                name: name, uid: entry.pointee.pw_uid, gid: entry.pointee.pw_gid, runuser: runuser))
    }

    /// The executable and arguments that run `command` as this user.
    func wrap(_ executable: String, _ arguments: [String]) -> (executable: String, arguments: [String]) {
        guard let switchTo else { return (executable, arguments) }
        return (switchTo.runuser, ["-u", switchTo.name, "--", executable] + arguments)
    }

    /// `wrap` as one shell line, for the watchdog script.
    func shellLine(_ executable: String, _ arguments: [String]) -> String {
        let wrapped = wrap(executable, arguments)
        return ([wrapped.executable] + wrapped.arguments).map(ShellQuoting.quote).joined(separator: " ")
    }

    /// Runs a tool as this user and returns its output (check `succeeded`). The working directory is one
    /// the user can enter, so tools run as `postgres` do not complain about root's current directory.
    func run(
        _ executable: String,
        _ arguments: [String],
        input: String? = nil,
        directory: String
    ) async throws -> ProcessOutput {
        let wrapped = wrap(executable, arguments)
        return try await ProcessRunner.run(
            wrapped.executable, wrapped.arguments, input: input, directory: directory)
    }

    /// Hands `path` to the cluster user so it can write there; a no-op when we are that user already.
    func takeOwnership(of path: String) throws {
        guard let switchTo else { return }
        guard chown(path, switchTo.uid, switchTo.gid) == 0 else {
            throw EmbeddedPostgresError(
                .system,
                "Could not chown \(path) to \(switchTo.name): \(String(cString: strerror(errno)))")
        }
    }
}
