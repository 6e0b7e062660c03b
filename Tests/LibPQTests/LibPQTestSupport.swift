import LibPQ
import Logging
import TestSupport
import Testing

// The LibPQ suites' own helpers: those that record issues (Testing) or know PGError. Databases, time bounds,
// gates and names come from the TestSupport target, shared with DurableTests.

let testLogger = Logger(label: "LibPQTests")

/// The error `body` threw, as a ``PGError``; records an issue when it threw nothing or something else.
@discardableResult
func expectPostgresError<T>(
    _ comment: Comment? = nil,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () async throws -> T
) async -> PGError? {
    do {
        _ = try await body()
        Issue.record(
            "expected a PGError, got success. \(comment.map { "\($0)" } ?? "")", sourceLocation: sourceLocation)
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
