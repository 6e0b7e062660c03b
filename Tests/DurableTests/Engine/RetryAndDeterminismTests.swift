import Durable
import Foundation
import Synchronization
import TestSupport
import Testing

/// Counts attempts per workflow ID across runs in this process.
final class AttemptCounter: Sendable {
    static let shared = AttemptCounter()
    private let counts = Mutex<[String: Int]>([:])
    func next(_ key: String) -> Int {
        counts.withLock {
            $0[key, default: 0] += 1
            return $0[key]!
        }
    }
    func count(_ key: String) -> Int { counts.withLock { $0[key, default: 0] } }
}

struct FlakyError: Error, CustomStringConvertible {
    var attempt: Int
    var description: String { "flaky failure on attempt \(attempt)" }
}

struct RetryInput: Codable, Sendable {
    var failures: Int
    var maxAttempts: Int
    var retryable: Bool
}

/// A step that fails `failures` times before it succeeds.
struct Flaky: Workflow {
    static let name = "flaky"
    func run(_ ctx: WorkflowContext, _ input: RetryInput) async throws -> Int {
        let policy = RetryPolicy(maxAttempts: input.maxAttempts, initialInterval: .milliseconds(10), backoffFactor: 2) {
            _ in input.retryable
        }
        return try await ctx.step("call-provider", retry: policy) {
            let attempt = AttemptCounter.shared.next(ctx.workflowID)
            if attempt <= input.failures { throw FlakyError(attempt: attempt) }
            return attempt
        }
    }
}

struct Stamp: Codable, Sendable, Equatable {
    var at: Date
    var id: UUID
    var dice: Int
}

/// Records time and randomness, then sleeps so the test can interrupt it and check the replay.
struct Stamped: Workflow {
    static let name = "stamped"
    func run(_ ctx: WorkflowContext, _ sleepMilliseconds: Int) async throws -> Stamp {
        let stamp = Stamp(
            at: try await ctx.now(), id: try await ctx.randomUUID(), dice: try await ctx.random(in: 1...6))
        try await ctx.sleep(for: .milliseconds(sleepMilliseconds))
        return stamp
    }
}

@Suite("Step retries and deterministic helpers")
struct RetryAndDeterminismTests {
    func harness(_ prefix: String) async throws -> MessagingHarness {
        try await MessagingHarness.make(prefix: prefix, executorID: "retries") { runtime in
            runtime.register(Flaky())
            runtime.register(Stamped())
        }
    }

    @Test("a step retried until it succeeds records one checkpoint, its result")
    func retriesUntilSuccess() async throws {
        let h = try await harness("retry_ok")
        let id = "flaky-ok-\(UUID())"
        let handle = try await h.runtime.start(
            Flaky.self, RetryInput(failures: 2, maxAttempts: 3, retryable: true), id: id)
        #expect(try await handle.result() == 3)
        #expect(AttemptCounter.shared.count(id) == 3)
        let rows = try await h.query("SELECT output, error FROM dbos.operation_outputs WHERE workflow_uuid = $1", [id])
        #expect(rows.rows.count == 1)
        #expect(rows.first?.string(0) == "3")
        #expect(rows.first?.string(1) == nil)
        await h.runtime.shutdown()
    }

    @Test("when attempts run out the last error is recorded and thrown")
    func retriesExhausted() async throws {
        let h = try await harness("retry_out")
        let id = "flaky-out-\(UUID())"
        let handle = try await h.runtime.start(
            Flaky.self, RetryInput(failures: 10, maxAttempts: 3, retryable: true), id: id)
        do {
            _ = try await handle.result()
            Issue.record("expected the workflow to fail")
        } catch let error as DurableError {
            #expect(error.code == .workflowFailed)
            #expect(error.errorName == "FlakyError")
            #expect(error.message.contains("attempt 3"))
            #expect(error.message.contains("after 3 attempts"))
        }
        #expect(AttemptCounter.shared.count(id) == 3)
        let rows = try await h.query("SELECT error FROM dbos.operation_outputs WHERE workflow_uuid = $1", [id])
        #expect(rows.first?.string(0)?.contains("\"name\":\"FlakyError\"") == true)
        await h.runtime.shutdown()
    }

    @Test("an error the predicate rejects is not retried")
    func predicateStopsRetries() async throws {
        let h = try await harness("retry_pred")
        let id = "flaky-pred-\(UUID())"
        let handle = try await h.runtime.start(
            Flaky.self, RetryInput(failures: 10, maxAttempts: 5, retryable: false), id: id)
        await #expect(throws: DurableError.self) { try await handle.result() }
        #expect(AttemptCounter.shared.count(id) == 1)
        await h.runtime.shutdown()
    }

    @Test("time and randomness recorded as steps replay the same after a restart", .tags(.slow), .skippedInFastRuns)
    func deterministicHelpersReplay() async throws {
        let url = try await TestDatabase.fresh("stamped").url
        let first = MessagingHarness.makeRuntime(url: url, executorID: "stamper") { $0.register(Stamped()) }
        try await first.launch()
        // Stop the first run mid-sleep (its helpers recorded), so the second start replays them; the sleep is long
        // enough that a stalled machine does not finish it first, which would leave nothing to replay.
        _ = try await first.start(Stamped.self, 15_000, id: "stamp")
        let firstHarness = MessagingHarness(url: url, runtime: first)
        #expect(try await firstHarness.waitForSleepCheckpoint(of: "stamp", timeout: .seconds(60)))
        await first.shutdown()
        let interrupted = try await firstHarness.query(
            "SELECT status FROM dbos.workflow_status WHERE workflow_uuid = 'stamp'")
        #expect(interrupted.first?.string(0) == "PENDING", "the first run was not interrupted mid-sleep")

        let second = MessagingHarness.makeRuntime(url: url, executorID: "stamper") { $0.register(Stamped()) }
        try await second.launch()
        let stamp = try await second.handle(for: "stamp", resultType: Stamp.self).result()
        let harness = MessagingHarness(url: url, runtime: second)
        let rows = try await harness.query(
            "SELECT function_name, output FROM dbos.operation_outputs WHERE workflow_uuid = 'stamp' ORDER BY function_id"
        )
        #expect(rows.rows.map { $0.string(0) } == ["DBOS.now", "DBOS.randomUUID", "DBOS.random", "DBOS.sleep"])
        #expect(rows.rows[1].string(1) == "\"\(stamp.id.uuidString)\"")
        #expect(rows.rows[2].string(1) == String(stamp.dice))
        // The replayed time is the first run's, to the millisecond, not the time of the restart.
        #expect(Date().timeIntervalSince(stamp.at) > 1.0)
        await second.shutdown()
    }
}
