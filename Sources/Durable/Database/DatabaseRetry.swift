import LibPQ
import Logging

/// Retries database work through connection loss: a Postgres restart, `pg_terminate_backend`, a network blip.
///
/// Only work that is safe to repeat goes through here. Every statement the engine retries is idempotent by
/// construction (guarded upserts and updates keyed by the workflow's ownership token), so running it twice after
/// an unknown commit outcome changes nothing. Statement errors (constraint violations, bad SQL) are never retried.
struct DatabaseRetry: Sendable {
    var timeout: Duration
    var logger: Logger

    func run<Result: Sendable>(
        _ what: @autoclosure () -> String,
        workflowID: String? = nil,
        _ operation: () async throws -> Result
    ) async throws -> Result {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        var delay = Duration.milliseconds(25)
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try await operation()
            } catch let error as PGError where error.isConnectionProblem && clock.now < deadline {
                if attempt == 1 || attempt % 10 == 0 {
                    logger.warning(
                        "database connection problem, retrying",
                        metadata: [
                            "operation": "\(what())", "attempt": "\(attempt)", "error": "\(error)",
                        ])
                }
                try await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(2))
            } catch {
                throw DurableError.wrapping(
                    error, context: "database error while trying to \(what())", workflowID: workflowID)
            }
        }
    }
}
