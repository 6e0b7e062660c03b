import Durable
import Foundation
import LibPQ
import Logging
import TestSupport
import Testing

/// Waits for one message on topic "go" (up to ten minutes), after a first step.
struct AwaitGo: Workflow {
    static let name = "await-go"
    func run(_ ctx: WorkflowContext, _ label: String) async throws -> String {
        let first = try await ctx.step("first") { "started" }
        let go = try await ctx.recv(String.self, topic: "go", timeout: .seconds(600))
        return "\(first):\(go ?? "timeout"):\(label)"
    }
}

/// Two processes (or runtimes) under one executor ID: refused unless allowed; when allowed, neither takes the
/// other's live work and neither leaves the other's interrupted work stranded; a client-mode runtime takes nothing.
@Suite("Executor identity")
struct ExecutorIdentityTests {
    static func runtime(
        _ url: String, executor: String, mode: DurableConfiguration.Mode = .worker, sharing: Bool = false,
        heartbeat: Duration = .seconds(5)
    ) -> DurableRuntime {
        var logger = Logger(label: "executor-identity-tests")
        logger.logLevel =
            ProcessInfo.processInfo.environment["DURABLE_TEST_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:))
            ?? .critical
        let runtime = DurableRuntime(
            configuration: DurableConfiguration(
                databaseURL: url, executorID: executor, mode: mode, allowsSharedExecutorID: sharing, maxConnections: 4,
                heartbeatInterval: heartbeat, takeoverAfter: nil
            ), logger: logger)
        runtime.register(AwaitGo())
        return runtime
    }

    /// The workflow's owner token and recovery attempts.
    static func ownership(_ h: MessagingHarness, _ id: String) async throws -> (owner: String?, attempts: Int?) {
        let row = try await h.query(
            "SELECT owner_xid, recovery_attempts FROM dbos.workflow_status WHERE workflow_uuid = $1", [id]
        ).first
        return (row?.string(0), row?.int(1))
    }

    /// Waits until the workflow waits for its message (its recv's deadline is recorded).
    static func waitForFirstStep(_ h: MessagingHarness, _ id: String) async throws {
        #expect(
            try await h.waitForSleepCheckpoint(of: id, timeout: .seconds(60)), "the workflow never reached its wait")
    }

    @Test(
        "a second live runtime under the same executor ID is refused at launch, saying what to do; once the first shuts down, the ID is free at once"
    )
    func duplicateIsRefused() async throws {
        let url = try await TestDatabase.fresh("dup_executor").url
        let first = Self.runtime(url, executor: "dup")
        try await first.launch()
        let second = Self.runtime(url, executor: "dup")
        do {
            try await second.launch()
            Issue.record("the second runtime launched under a live executor ID")
        } catch let error as DurableError {
            #expect(error.code == .executorIDInUse, "\(error)")
            #expect(
                error.message.contains("executorID") && error.message.contains("DBOS__VMID"),
                "says what to do: \(error.message)")
            #expect(error.message.contains("'dup'"))
        }
        await second.shutdown()
        // The refused launch left the first one registered and running.
        let h = MessagingHarness(url: url, runtime: first)
        #expect(
            try await h.query("SELECT count(*) FROM dbos.durable_executor_instances WHERE executor_id = 'dup'").first?
                .int(0) == 1)
        _ = try await first.start(AwaitGo.self, "x", id: "dup-still-works")

        await first.shutdown()
        let third = Self.runtime(url, executor: "dup")
        try await third.launch()  // a graceful shutdown gives the ID up: no wait for its heartbeat to age
        try await third.send(to: "dup-still-works", topic: "go", "now")
        #expect(try await third.handle(for: "dup-still-works", of: AwaitGo.self).result() == "started:now:x")
        await third.shutdown()
    }

    @Test(
        "a live worker process holds its executor ID against a launch in another process; once it is SIGKILLed, a new process takes the ID at once and finishes its work",
        .tags(.crash), .skippedInFastRuns)
    func liveProcessHoldsTheID() async throws {
        let database = try await TestDatabase.fresh("dup_process")
        try await database.createLedger()
        let id = "held-1"
        let holder = try WorkerProcess(
            "holder", workerFlags(database, id: id, executor: "held") + ["--start", "--pause-in", "2"])
        #expect(await holder.waitFor(line: "IN_STEP 2") != nil)
        let intruder = try WorkerProcess("intruder", workerFlags(database, id: id, executor: "held"))
        let refusal = await intruder.waitFor(anyOf: ["ERROR", "READY"])
        #expect(refusal?.hasPrefix("ERROR executorIDInUse") == true, "\(refusal ?? "no line")")
        _ = await intruder.waitForExit()
        #expect(try await database.status(id) == "PENDING")
        #expect(
            try await database.value(
                "SELECT recovery_attempts FROM dbos.workflow_status WHERE workflow_uuid = $1", [id]) == "1",
            "the refused process took the live one's workflow")

        _ = await holder.kill()
        let successor = try WorkerProcess("successor", workerFlags(database, id: id, executor: "held"))
        #expect(await successor.waitFor(line: "RESULT") == "RESULT 6")
        _ = await successor.waitForExit()
        // Step 2 was cut by the kill before its checkpoint, so its effect ran twice.
        #expect(try await database.ledger(id) == [1: 1, 2: 2, 3: 1])
    }

    @Test(
        "with sharing allowed, a launch does not take a live sharer's workflow, and one a sharer's shutdown interrupts is resumed by the other at its next heartbeat"
    )
    func sharedIDStrandsNothing() async throws {
        let url = try await TestDatabase.fresh("shared_executor").url
        let worker = Self.runtime(url, executor: "shared", sharing: true, heartbeat: .seconds(4))
        try await worker.launch()
        let h = MessagingHarness(url: url, runtime: worker)
        let id = "trip-shared"
        _ = try await worker.start(AwaitGo.self, "trip", id: id)
        try await Self.waitForFirstStep(h, id)
        let before = try await Self.ownership(h, id)

        // A short-lived process of the same application, under the same ID: its launch must leave the live run be.
        let sender = Self.runtime(url, executor: "shared", sharing: true, heartbeat: .seconds(4))
        try await sender.launch()
        let after = try await Self.ownership(h, id)
        #expect(
            after.owner == before.owner && after.attempts == 1,
            "the launch took a live sharer's workflow: \(before) → \(after)")

        // The worker shuts down gracefully, interrupting the trip; the process still alive under the ID picks it up.
        await worker.shutdown()
        let deadline = ContinuousClock.now.advanced(by: .seconds(60))
        var resumed = try await Self.ownership(h, id)
        while resumed.owner == before.owner, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
            resumed = try await Self.ownership(h, id)
        }
        #expect(
            resumed.owner != before.owner && resumed.attempts == 2,
            "nothing resumed the interrupted workflow: \(resumed)")
        try await sender.send(to: id, topic: "go", "approved")
        #expect(try await sender.handle(for: id, of: AwaitGo.self).result() == "started:approved:trip")
        await sender.shutdown()
    }

    @Test(
        "a client-mode runtime beside a live worker under the same executor ID launches, takes none of its work, sends and enqueues, and refuses to run a workflow itself"
    )
    func clientModeTakesNothing() async throws {
        let url = try await TestDatabase.fresh("client_mode").url
        let worker = Self.runtime(url, executor: "local")
        worker.register(queue: WorkflowQueue("trips"))
        try await worker.launch()
        let h = MessagingHarness(url: url, runtime: worker)
        let id = "trip-client"
        _ = try await worker.start(AwaitGo.self, "trip", id: id)
        try await Self.waitForFirstStep(h, id)
        let before = try await Self.ownership(h, id)

        let client = Self.runtime(url, executor: "local", mode: .client)
        client.register(queue: WorkflowQueue("trips"))
        try await client.launch()
        #expect(try await Self.ownership(h, id) == before, "the client took the worker's workflow")
        #expect(
            try await h.query("SELECT count(*) FROM dbos.durable_executor_instances").first?.int(0) == 1,
            "the client registered as a holder of the ID")
        do {
            _ = try await client.start(AwaitGo.self, "nope", id: "client-start")
            Issue.record("a client-mode runtime started a workflow")
        } catch let error as DurableError {
            #expect(error.code == .invalidConfiguration && error.message.contains("client mode"), "\(error)")
        }
        #expect(
            try await h.query("SELECT count(*) FROM dbos.workflow_status WHERE workflow_uuid = 'client-start'").first?
                .int(0) == 0)

        let queued = try await client.enqueue(
            AwaitGo.self, "queued", queue: "trips", options: EnqueueOptions(id: "trip-queued"))
        try await client.send(to: id, topic: "go", "yes")
        try await client.send(to: "trip-queued", topic: "go", "also")
        #expect(try await client.handle(for: id, of: AwaitGo.self).result() == "started:yes:trip")
        #expect(try await queued.result() == "started:also:queued")
        #expect(
            try await h.query("SELECT executor_id FROM dbos.workflow_status WHERE workflow_uuid = 'trip-queued'").first?
                .string(0) == "local")
        await client.shutdown()
        await worker.shutdown()
    }
}
