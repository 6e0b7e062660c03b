import Foundation
import Synchronization

/// A throwaway PostgreSQL cluster, started from the installed server binaries in a private temporary folder
/// and removed by ``stop()`` or, if this process ends without calling it (tests, crashes, SIGKILL), by a
/// detached watchdog within a few seconds.
///
/// Tests, the demo and the benchmarks normally go through ``SharedDatabase``, which honours `DATABASE_URL`
/// and starts at most one cluster per process.
public final class EmbeddedPostgres: Sendable {
    /// The connection URL of the `postgres` database: `postgresql://postgres@127.0.0.1:PORT/postgres`.
    public let url: String
    /// The loopback TCP port the server listens on.
    public let port: Int
    /// The cluster's data directory (inside the temporary folder).
    public let dataDirectory: String

    /// The temporary folder holding the data directory, the Unix socket and the server log.
    let rootDirectory: String
    /// The server log, which start-up and restart failures quote.
    let logFile: String
    let pgCtl: PgCtl
    let psql: Psql?
    let log: @Sendable (String) -> Void
    /// Set once by ``stop()``; later calls do nothing and other operations refuse.
    private let stopped = Mutex(false)

    private init(
        port: Int, rootDirectory: String, pgCtl: PgCtl, psql: Psql?, log: @escaping @Sendable (String) -> Void
    ) {
        self.url = DatabaseURL.embedded(port: port, database: "postgres")
        self.port = port
        self.rootDirectory = rootDirectory
        self.dataDirectory = pgCtl.dataDirectory
        self.logFile = pgCtl.logFile
        self.pgCtl = pgCtl
        self.psql = psql
        self.log = log
    }

    /// Starts a throwaway cluster: `initdb` into a fresh temporary folder, a free loopback port, trust auth
    /// for user `postgres` on 127.0.0.1 only, the Unix socket and the server log in that folder. As root,
    /// everything runs as the `postgres` user.
    ///
    /// - Parameters:
    ///   - syncToDisk: `true` (the default, for benchmarks and the demo) keeps `fsync` on, so a commit waits
    ///     for the disk as in production. `false` turns it off for test runs: commits still reach the
    ///     operating system before they are acknowledged, so killing or restarting the server loses nothing,
    ///     but a burst of database creation no longer stalls the machine on disk flushes.
    ///   - log: receives one line per step (folder, version, port), for callers that want to show
    ///     progress; the default discards them.
    /// - Throws: ``EmbeddedPostgresError``; ``EmbeddedPostgresError/Kind/serverNotInstalled`` explains how
    ///   to install PostgreSQL or use Docker instead.
    public static func start(
        syncToDisk: Bool = true, log: @escaping @Sendable (String) -> Void = { _ in }
    ) async throws -> EmbeddedPostgres {
        let binaries = try PostgresBinaries.locate()
        let user = try ClusterUser.forCluster()
        let root = try TemporaryDirectory.create(asRoot: user.switchTo != nil)
        let pgCtl = PgCtl(
            binaries: binaries, user: user, rootDirectory: root,
            dataDirectory: root + "/data", logFile: root + "/postgres.log")
        do {
            try user.takeOwnership(of: root)
            // Launched before initdb so that even a crash during set-up leaves nothing behind.
            try await Watchdog.launch(
                rootDirectory: root, dataDirectory: pgCtl.dataDirectory, pgCtl: binaries.pgCtl, user: user)
            let version = await pgCtl.version() ?? "PostgreSQL"
            log("EmbeddedPostgres: initdb (\(version), \(binaries.directory)) in \(root)")
            try await initdb(pgCtl: pgCtl)
            let configuration = ClusterConfiguration(
                dataDirectory: pgCtl.dataDirectory, socketDirectory: root, user: user, syncToDisk: syncToDisk)
            try configuration.prepare()
            let port = try await startServer(pgCtl: pgCtl, configuration: configuration, log: log)
            let psql = binaries.psql.map { Psql(executable: $0, user: user, directory: root) }
            let server = EmbeddedPostgres(port: port, rootDirectory: root, pgCtl: pgCtl, psql: psql, log: log)
            log("EmbeddedPostgres: accepting connections at \(server.url)")
            return server
        } catch {
            // Tidy up now rather than leave it to the watchdog, which only acts when this process exits.
            _ = try? await pgCtl.stop(.immediate)
            try? FileManager.default.removeItem(atPath: root)
            throw error
        }
    }

    /// Creates the data directory with superuser `postgres`, UTF-8 and the C locale (so results do not
    /// depend on the host's locale settings).
    private static func initdb(pgCtl: PgCtl) async throws {
        try await pgCtl.user.run(
            pgCtl.binaries.initdb,
            [
                "--pgdata", pgCtl.dataDirectory, "--username", "postgres", "--auth", "trust",
                "--encoding", "UTF8", "--locale", "C",
                // Only skips flushing initdb's own files: a throwaway cluster need not survive a power cut
                // during set-up. The running server's fsync is as `syncToDisk` says.
                "--no-sync",
            ], directory: pgCtl.rootDirectory
        ).check("initdb")
    }

    /// Starts the server on a free port, retrying with another port when one was taken between probing and
    /// binding, and returns the port it listens on.
    private static func startServer(
        pgCtl: PgCtl, configuration: ClusterConfiguration, log: @Sendable (String) -> Void
    ) async throws -> Int {
        let attempts = 5
        // Parallel test suites each open pools of their own; leave plenty of room.
        var maxConnections = 1000
        var attempt = 0
        while true {
            attempt += 1
            let port = try FreePort.find()
            try configuration.writeSettings(port: port, maxConnections: maxConnections)
            let logOffset = pgCtl.logSize()
            let output = try await pgCtl.start()
            if output.succeeded { return port }
            let serverLog = pgCtl.logTail(from: logOffset)
            if attempt < attempts && serverLog.contains("Address already in use") {
                log("EmbeddedPostgres: port \(port) was taken, trying another")
                continue
            }
            // macOS uses System V semaphores with small default limits; 300 connections may not fit there.
            if attempt < attempts && maxConnections > 100 && serverLog.contains("semaphore") {
                log("EmbeddedPostgres: not enough semaphores for \(maxConnections) connections, using 100")
                maxConnections = 100
                continue
            }
            try output.check("pg_ctl start", hint: serverLog.isEmpty ? nil : "server log:\n\(serverLog)")
        }
    }

    /// The URL of another database on this server (same user, host and port).
    public func url(database: String) -> String {
        DatabaseURL.embedded(port: port, database: database)
    }

    /// Restarts the server and returns once it accepts connections again.
    ///
    /// - Parameter immediate: `true` aborts the server like a crash (`pg_ctl restart -m immediate`), so the
    ///   restart runs WAL recovery, which is what crash tests want; `false` shuts it down cleanly first
    ///   (`-m fast`). Existing connections are dropped either way.
    public func restart(immediate: Bool) async throws {
        try ensureRunning()
        log("EmbeddedPostgres: restarting (\(immediate ? "immediate" : "fast"))")
        let logOffset = pgCtl.logSize()
        let output = try await pgCtl.restart(immediate ? .immediate : .fast)
        let serverLog = output.succeeded ? "" : pgCtl.logTail(from: logOffset)
        try output.check("pg_ctl restart", hint: serverLog.isEmpty ? nil : "server log:\n\(serverLog)")
    }

    /// Stops the server at once (`-m immediate`: the data is throwaway) and deletes the temporary folder.
    /// Safe to call more than once, and from several tasks; only the first call does anything.
    public func stop() async {
        let alreadyStopped = stopped.withLock { isStopped in
            defer { isStopped = true }
            return isStopped
        }
        guard !alreadyStopped else { return }
        log("EmbeddedPostgres: stopping and removing \(rootDirectory)")
        if let output = try? await pgCtl.stop(.immediate), !output.succeeded {
            log("EmbeddedPostgres: pg_ctl stop: \(output.stderr.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        // Removing the folder also tells the watchdog to exit.
        do {
            try FileManager.default.removeItem(atPath: rootDirectory)
        } catch {
            log("EmbeddedPostgres: could not remove \(rootDirectory): \(error)")
        }
    }

    /// Runs SQL with the installed `psql` (ON_ERROR_STOP on, statements run one by one) and returns its
    /// output unaligned without headers, e.g. "1" for `select 1`. For set-up such as `CREATE DATABASE`;
    /// application code should use a real client.
    public func runSQL(_ sql: String, database: String = "postgres") async throws -> String {
        try ensureRunning()
        guard let psql else { throw EmbeddedPostgresError.clientNotInstalled() }
        return try await psql.run(sql, url: url(database: database))
    }

    private func ensureRunning() throws {
        if stopped.withLock({ $0 }) {
            throw EmbeddedPostgresError(
                .stopped,
                "This EmbeddedPostgres at \(url) was stopped; start a new one with EmbeddedPostgres.start().")
        }
    }
}
