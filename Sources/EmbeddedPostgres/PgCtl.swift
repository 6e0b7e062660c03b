import Foundation

/// `pg_ctl` for one cluster, run as the cluster user.
struct PgCtl: Sendable {
    let binaries: PostgresBinaries
    let user: ClusterUser
    let rootDirectory: String
    let dataDirectory: String
    let logFile: String

    /// How long `pg_ctl -w` may wait for startup or crash recovery before giving up.
    static let timeoutSeconds = 120

    /// How `pg_ctl` stops the server.
    enum Mode: String, Sendable {
        /// Abort without a checkpoint, like a crash; the next start runs recovery.
        case immediate
        /// Disconnect clients and shut down cleanly.
        case fast
    }

    /// Starts the server and waits until it accepts connections.
    func start() async throws -> ProcessOutput {
        // `-l` is essential, not just tidy: without it the server inherits pg_ctl's stdout/stderr, i.e. our
        // pipes, and the reads that wait for pg_ctl to finish would wait for the server to exit instead.
        try await user.run(
            binaries.pgCtl,
            [
                "-D", dataDirectory, "-l", logFile, "-w", "-t", String(Self.timeoutSeconds), "start",
            ], directory: rootDirectory)
    }

    /// Stops and starts the server, waiting until it accepts connections again. `pg_ctl` reuses the options
    /// of the previous start, and `-l` again keeps the new server off our pipes.
    func restart(_ mode: Mode) async throws -> ProcessOutput {
        try await user.run(
            binaries.pgCtl,
            [
                "-D", dataDirectory, "-l", logFile, "-w", "-t", String(Self.timeoutSeconds),
                "-m", mode.rawValue, "restart",
            ], directory: rootDirectory)
    }

    /// Stops the server and waits for it to exit.
    func stop(_ mode: Mode) async throws -> ProcessOutput {
        try await user.run(
            binaries.pgCtl,
            [
                "-D", dataDirectory, "-w", "-t", String(Self.timeoutSeconds), "-m", mode.rawValue, "stop",
            ], directory: rootDirectory)
    }

    /// `pg_ctl --version`, e.g. "pg_ctl (PostgreSQL) 15.8", for the start-up log line.
    func version() async -> String? {
        guard let output = try? await ProcessRunner.run(binaries.pgCtl, ["--version"]), output.succeeded
        else { return nil }
        return output.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The last lines of the server log since byte `offset`: pg_ctl itself only says "could not start
    /// server, examine the log output", so failures quote the log.
    func logTail(from offset: UInt64 = 0, lines: Int = 30) -> String {
        guard let handle = FileHandle(forReadingAtPath: logFile) else { return "" }
        defer { try? handle.close() }
        try? handle.seek(toOffset: offset)
        let data = (try? handle.readToEnd()) ?? Data()
        let text = String(decoding: data, as: UTF8.self)
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines)
            .joined(separator: "\n").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The current size of the log, so a later `logTail(from:)` shows only what one attempt wrote.
    func logSize() -> UInt64 {
        let attributes = try? FileManager.default.attributesOfItem(atPath: logFile)
        return (attributes?[.size] as? NSNumber)?.uint64Value ?? 0
    }
}
