import Durable
import Foundation
import LibPQ
import TestSupport
import Testing

/// Waits, transactions and messages across a real SIGKILL of the worker process and a restart.
@Suite("Primitives across SIGKILL", .tags(.crash), .skippedInFastRuns)
struct PrimitiveCrashTests {
    /// A fresh database with the worker's ledger table, and the worker's common flags.
    func setUp(_ prefix: String) async throws -> (url: String, harness: MessagingHarness, flags: (String) -> [String]) {
        let url = try await TestDatabase.fresh(prefix).url
        let runtime = MessagingHarness.makeRuntime(url: url, executorID: "test-operator") { _ in }
        let harness = MessagingHarness(url: url, runtime: runtime)
        _ = try await harness.query("CREATE SCHEMA dbos_ledger")
        _ = try await harness.query("CREATE TABLE dbos_ledger.ledger (workflow_id text, step int)")
        return (url, harness, { id in ["--url", url, "--executor", "crash-worker", "--workflow", id] })
    }

    func ledger(_ harness: MessagingHarness, _ id: String) async throws -> [Int: Int] {
        let rows = try await harness.query(
            "SELECT step, count(*) FROM dbos_ledger.ledger WHERE workflow_id = $1 GROUP BY step", [id])
        var counts: [Int: Int] = [:]
        for row in rows.rows { counts[row.int(0) ?? -1] = row.int(1) }
        return counts
    }

    @Test(
        "a transactional step is exactly once when killed inside the transaction and after its commit",
        arguments: ["--pause-in", "--pause-after"])
    func transactionExactlyOnce(pause: String) async throws {
        let (_, harness, flags) = try await setUp("crash_tx")
        let id = "tx"
        let first = try WorkerProcess("first", flags(id) + ["--steps", "3", "--start", "--transactional", pause, "2"])
        #expect(
            await first.waitFor(line: pause == "--pause-in" ? "IN_STEP 2" : "AFTER_STEP 2", timeout: .seconds(30))
                != nil)
        await first.kill()
        let second = try WorkerProcess("second", flags(id) + ["--steps", "3", "--transactional"])
        #expect(await second.waitFor(line: "RESULT", timeout: .seconds(30)) == "RESULT 6")
        await second.waitForExit(timeout: .seconds(120))
        #expect(try await ledger(harness, id) == [1: 1, 2: 1, 3: 1])
    }

    @Test("a durable sleep killed midway sleeps only the remaining time after the restart", .tags(.slow))
    func sleepAcrossKill() async throws {
        let (_, harness, flags) = try await setUp("crash_sleep")
        // 30 s: the kill must fall inside the sleep however long the machine stalls; the restart comes 2 s
        // before the wake-up, so the test does not wait the whole sleep twice.
        let sleep = ["--sleep-after", "1", "30000"]
        let first = try WorkerProcess("first", flags("sleepy") + ["--steps", "2", "--start"] + sleep)
        #expect(await first.waitFor(line: "SLEEPING", timeout: .seconds(30)) != nil)
        // The line comes just before the wake-up time is checkpointed: kill once it is committed.
        let wakeQuery =
            "SELECT output FROM dbos.operation_outputs WHERE workflow_uuid = 'sleepy' AND function_name = 'DBOS.sleep'"
        var recorded = try await harness.query(wakeQuery).first?.string(0)
        let checkpointDeadline = ContinuousClock.now.advanced(by: .seconds(60))
        while recorded == nil, ContinuousClock.now < checkpointDeadline {
            try await Task.sleep(for: .milliseconds(20))
            recorded = try await harness.query(wakeQuery).first?.string(0)
        }
        await first.kill()
        let recordedWake = try #require(recorded.flatMap(Double.init))
        // Restart once the wake-up time is less than 2 s away.
        while recordedWake - Date().timeIntervalSince1970 > 2 { try await Task.sleep(for: .milliseconds(50)) }
        // Same code as before the kill: the restart must replay the same operations.
        let second = try WorkerProcess("second", flags("sleepy") + ["--steps", "2"] + sleep)
        #expect(await second.waitFor(line: "READY", timeout: .seconds(30)) != nil)
        let ready = Date().timeIntervalSince1970
        #expect(await second.waitFor(line: "RESULT", timeout: .seconds(30)) == "RESULT 3")
        let finished = Date().timeIntervalSince1970
        await second.waitForExit(timeout: .seconds(120))
        #expect(finished >= recordedWake - 0.05)  // it did sleep until the recorded time
        // A fresh 30 s sleep after the restart would end at ready + 30 s, at least 28 s after both marks below;
        // 20 s leaves a stalled machine room for the replay and step 2 (2.5 s was too little in a loaded run).
        #expect(finished < max(recordedWake, ready) + 20)
        let after = try await harness.query(
            "SELECT output FROM dbos.operation_outputs WHERE workflow_uuid = 'sleepy' AND function_name = 'DBOS.sleep'")
        #expect(after.rows.count == 1)
        #expect(after.first?.string(0).flatMap(Double.init) == recordedWake)
        #expect(try await ledger(harness, "sleepy") == [1: 1, 2: 1])
        await harness.runtime.shutdown()
    }

    @Test("a message sent while the receiver is down is received after its restart, once")
    func messageWhileDown() async throws {
        let (_, harness, flags) = try await setUp("crash_recv")
        let first = try WorkerProcess("first", flags("listener") + ["--steps", "2", "--start", "--recv-after", "1"])
        #expect(await first.waitFor(line: "WAITING", timeout: .seconds(30)) != nil)
        try await Task.sleep(for: .milliseconds(300))
        await first.kill()
        try await harness.runtime.send(to: "listener", topic: "go", "proceed")
        let second = try WorkerProcess("second", flags("listener") + ["--steps", "2", "--recv-after", "1"])
        #expect(await second.waitFor(line: "GOT", timeout: .seconds(30)) == "GOT proceed")
        #expect(await second.waitFor(line: "RESULT", timeout: .seconds(30)) == "RESULT 3")
        await second.waitForExit(timeout: .seconds(120))
        let consumed = try await harness.query(
            "SELECT count(*) FILTER (WHERE consumed), count(*) FROM dbos.notifications WHERE destination_uuid = 'listener'"
        )
        #expect(consumed.first?.int(0) == 1)
        #expect(consumed.first?.int(1) == 1)
        await harness.runtime.shutdown()
    }

    @Test("a restarted receiver still waiting is woken by a message at once")
    func messageAfterRestart() async throws {
        let (_, harness, flags) = try await setUp("crash_recv2")
        let first = try WorkerProcess("first", flags("patient") + ["--steps", "1", "--start", "--recv-after", "1"])
        #expect(await first.waitFor(line: "WAITING", timeout: .seconds(30)) != nil)
        try await Task.sleep(for: .milliseconds(300))
        await first.kill()
        let second = try WorkerProcess("second", flags("patient") + ["--steps", "1", "--recv-after", "1"])
        #expect(await second.waitFor(line: "WAITING", timeout: .seconds(30)) != nil)
        try await Task.sleep(for: .milliseconds(300))
        try await harness.runtime.send(to: "patient", topic: "go", "now")
        // 25 s: a stalled machine's slack, still below the 30 s fallback look that would find it without NOTIFY.
        #expect(await second.waitFor(line: "GOT", timeout: .seconds(25)) == "GOT now")
        #expect(await second.waitFor(line: "RESULT", timeout: .seconds(30)) == "RESULT 1")
        await second.waitForExit(timeout: .seconds(120))
        await harness.runtime.shutdown()
    }
}
