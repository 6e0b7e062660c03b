import Foundation

/// The settings written into a fresh data directory after `initdb`.
struct ClusterConfiguration: Sendable {
    /// Name of the file `postgresql.conf` includes; rewritten on every start attempt with the port to try.
    static let includeFile = "durable_embedded.conf"

    let dataDirectory: String
    /// Where the Unix socket goes: our private folder, so it never collides with a system server's
    /// `/var/run/postgresql` or needs write access there.
    let socketDirectory: String
    let user: ClusterUser
    /// Whether commits wait for the disk (`fsync = on`); see ``EmbeddedPostgres/start(syncToDisk:log:)``.
    let syncToDisk: Bool

    /// Replaces `pg_hba.conf` (trust for `postgres` on the socket and 127.0.0.1 only; password checks for the
    /// test roles `durable_password_test` and members of `durable_password_roles`; nothing else) and makes
    /// `postgresql.conf` include ``includeFile``. Done once, right after `initdb`.
    func prepare() throws {
        // Trust is safe here because the server listens on loopback only and the socket sits in a 0700
        // folder; limiting it to the `postgres` role keeps anything else from logging in at all.
        try write(
            """
            # Written by EmbeddedPostgres: a throwaway cluster for tests, demo and benchmarks.
            # TYPE  DATABASE  USER      ADDRESS        METHOD
            local   all       postgres                 trust
            host    all       postgres  127.0.0.1/32   trust
            # Roles that tests create to check password handling and least privilege: real password checks.
            host    all       durable_password_test    127.0.0.1/32   scram-sha-256
            host    all       +durable_password_roles  127.0.0.1/32   scram-sha-256

            """, to: "pg_hba.conf", append: false)
        try write("\ninclude '\(Self.includeFile)'\n", to: "postgresql.conf", append: true)
    }

    /// Writes the settings that may change between start attempts.
    func writeSettings(port: Int, maxConnections: Int) throws {
        try write(
            """
            # Written by EmbeddedPostgres; see ClusterConfiguration.swift for the reasons.
            listen_addresses = '127.0.0.1'
            port = \(port)
            unix_socket_directories = '\(socketDirectory.replacingOccurrences(of: "'", with: "''"))'
            # Parallel test suites plus benchmarks with 64-connection pools must fit at once.
            max_connections = \(maxConnections)
            # Benchmarks and the demo measure real durable commits (fsync on). The test suite turns fsync off:
            # its parallel suites create dozens of databases at once, and waiting for the disk then stalled
            # the whole machine for seconds. A commit is still written to the operating system before it is
            # acknowledged (synchronous_commit stays on), so killing the server loses nothing; only a crash
            # of the machine itself could.
            fsync = \(syncToDisk ? "on" : "off")
            synchronous_commit = on
            full_page_writes = on
            # pg_ctl -l already sends the server's output to a file in the cluster folder.
            logging_collector = off
            # Start-up failures are diagnosed by matching English log text ("Address already in use").
            lc_messages = 'C'

            """, to: Self.includeFile, append: false)
    }

    /// Writes (or appends) a file inside the data directory and leaves it owned by the cluster user, so the
    /// server, running as that user, can always read it even when we are root.
    private func write(_ text: String, to name: String, append: Bool) throws {
        let path = dataDirectory + "/" + name
        do {
            if append, let handle = FileHandle(forWritingAtPath: path) {
                defer { try? handle.close() }
                try handle.seekToEnd()
                try handle.write(contentsOf: Data(text.utf8))
            } else {
                try Data(text.utf8).write(to: URL(fileURLWithPath: path))
            }
        } catch {
            throw EmbeddedPostgresError(.system, "Could not write \(path): \(error)")
        }
        try user.takeOwnership(of: path)
    }
}
