import Durable
import Foundation
import LibPQ
import Logging
import TestSupport

/// A runtime on a fresh database of its own, for the messaging suites.
struct MessagingHarness {
    let url: String
    let runtime: DurableRuntime

    static func make(prefix: String, executorID: String = "messaging", register: (DurableRuntime) -> Void) async throws
        -> MessagingHarness
    {
        let url = try await TestDatabase.fresh(prefix).url
        let runtime = makeRuntime(url: url, executorID: executorID, register: register)
        try await runtime.launch()
        return MessagingHarness(url: url, runtime: runtime)
    }

    static func makeRuntime(url: String, executorID: String, register: (DurableRuntime) -> Void) -> DurableRuntime {
        var logger = Logger(label: "messaging-tests")
        // DURABLE_TEST_LOG_LEVEL (e.g. debug) shows the runtimes' logs when diagnosing a test; quiet otherwise.
        logger.logLevel =
            ProcessInfo.processInfo.environment["DURABLE_TEST_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:))
            ?? .critical
        // Small pools: many suites run in parallel against one server.
        let runtime = DurableRuntime(
            configuration: DurableConfiguration(databaseURL: url, executorID: executorID, maxConnections: 6),
            logger: logger)
        register(runtime)
        return runtime
    }

    /// Runs one query on the test's database.
    func query(_ sql: String, _ parameters: [any PGParameter] = []) async throws -> QueryResult {
        try await TestDatabase(url: url).query(sql, parameters)
    }

    /// Waits until `count` workflows (only `workflowID`, when given) have recorded the deadline of a sleep or a
    /// wait (`DBOS.sleep`), which they write before they start waiting; false if that did not happen in `timeout`.
    @discardableResult
    func waitForSleepCheckpoint(of workflowID: String? = nil, count: Int = 1, timeout: Duration = .seconds(30))
        async throws -> Bool
    {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while ContinuousClock.now < deadline {
            let recorded = try await query(
                "SELECT count(*) FROM dbos.operation_outputs WHERE function_name = 'DBOS.sleep' AND ($1::text IS NULL OR workflow_uuid = $1)",
                [workflowID]
            )
            if recorded.first?.int(0) == count { return true }
            try await Task.sleep(for: .milliseconds(20))
        }
        return false
    }
}
