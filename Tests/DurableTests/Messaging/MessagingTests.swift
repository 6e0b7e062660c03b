import Durable
import Foundation
import LibPQ
import TestSupport
import Testing

struct Approval: Codable, Sendable, Equatable {
    var approved: Bool
    var by: String
}

/// Waits for an approval message and returns it (nil on timeout).
struct AwaitApproval: Workflow {
    static let name = "await-approval"
    func run(_ ctx: WorkflowContext, _ timeoutMilliseconds: Int) async throws -> Approval? {
        try await ctx.recv(Approval.self, topic: "approval", timeout: .milliseconds(timeoutMilliseconds))
    }
}

/// Receives two messages on the default topic, in order.
struct ReceiveTwo: Workflow {
    static let name = "receive-two"
    func run(_ ctx: WorkflowContext, _ timeoutMilliseconds: Int) async throws -> [String] {
        var received: [String] = []
        for _ in 0..<2 {
            if let message = try await ctx.recv(String.self, timeout: .milliseconds(timeoutMilliseconds)) {
                received.append(message)
            }
        }
        return received
    }
}

/// Sends a message from inside a workflow to another workflow.
struct Forward: Workflow {
    static let name = "forward"
    func run(_ ctx: WorkflowContext, _ destination: String) async throws -> Bool {
        try await ctx.send(to: destination, topic: "approval", Approval(approved: true, by: "forwarder"))
        return true
    }
}

/// Publishes progress as events.
struct Progress: Workflow {
    static let name = "progress"
    func run(_ ctx: WorkflowContext, _ steps: Int) async throws -> Int {
        for step in 1...steps {
            try await ctx.setEvent("progress", step)
        }
        try await ctx.sleep(for: .milliseconds(300))
        try await ctx.setEvent("done", true)
        return steps
    }
}

/// Sleeps durably.
struct Nap: Workflow {
    static let name = "nap"
    func run(_ ctx: WorkflowContext, _ milliseconds: Int) async throws -> Int {
        try await ctx.sleep(for: .milliseconds(milliseconds))
        return milliseconds
    }
}

@Suite("Messages, events and durable sleep")
struct MessagingTests {
    func harness(_ prefix: String, executorID: String = "messaging") async throws -> MessagingHarness {
        try await MessagingHarness.make(prefix: prefix, executorID: executorID) { runtime in
            runtime.register(AwaitApproval())
            runtime.register(ReceiveTwo())
            runtime.register(Forward())
            runtime.register(Progress())
            runtime.register(Nap())
        }
    }

    @Test("recv wakes on a message sent from outside while it waits")
    func receiveWhileWaiting() async throws {
        let h = try await harness("msg_wait")
        let handle = try await h.runtime.start(AwaitApproval.self, 60_000, id: "trip-1")
        try await Task.sleep(for: .milliseconds(300))
        let sentAt = ContinuousClock.now
        try await h.runtime.send(to: "trip-1", topic: "approval", Approval(approved: true, by: "manager"))
        #expect(try await handle.result() == Approval(approved: true, by: "manager"))
        // Woken by the message, not by the 60-second timeout (a generous bound: the fallback look alone would
        // come within 30 s).
        #expect(sentAt.duration(to: .now) < .seconds(20))
        let consumed = try await h.query(
            "SELECT consumed, consumed_by_function_id, topic FROM dbos.notifications WHERE destination_uuid = 'trip-1'")
        #expect(consumed.rows.count == 1)
        #expect(consumed.first?.bool(0) == true)
        #expect(consumed.first?.int(1) == 1)
        let steps = try await h.query(
            "SELECT function_id, function_name FROM dbos.operation_outputs WHERE workflow_uuid = 'trip-1' ORDER BY 1")
        #expect(steps.rows.map { $0.string(1) } == ["DBOS.recv", "DBOS.sleep"])
        await h.runtime.shutdown()
    }

    @Test("a message sent before recv starts waiting is received")
    func messageBeforeReceive() async throws {
        let h = try await harness("msg_before")
        // Both messages may arrive before the workflow reaches its first recv: they wait in the table.
        // Timeouts far longer than any stall: both messages are sent at once, so the test does not wait them out.
        let handle = try await h.runtime.start(ReceiveTwo.self, 60_000, id: "early")
        try await h.runtime.send(to: "early", "first")
        try await h.runtime.send(to: "early", "second")
        #expect(try await handle.result() == ["first", "second"])
        await h.runtime.shutdown()
    }

    @Test("recv returns nil on timeout and records it")
    func receiveTimeout() async throws {
        let h = try await harness("msg_timeout")
        let handle = try await h.runtime.start(AwaitApproval.self, 200, id: "lonely")
        #expect(try await handle.result() == nil)
        let recorded = try await h.query(
            "SELECT output FROM dbos.operation_outputs WHERE workflow_uuid = 'lonely' AND function_name = 'DBOS.recv'")
        #expect(recorded.first?.string(0) == "null")
        await h.runtime.shutdown()
    }

    @Test("an idempotency key makes a retried send deliver once")
    func idempotentSend() async throws {
        let h = try await harness("msg_idem")
        // Long timeouts (700 ms ones ran out on a stalled machine before the first send): the duplicate must not be
        // delivered, so a third, un-keyed message ends the second recv; it is received second.
        let handle = try await h.runtime.start(ReceiveTwo.self, 60_000, id: "once")
        try await h.runtime.send(to: "once", "hello", idempotencyKey: "request-42")
        try await h.runtime.send(to: "once", "hello", idempotencyKey: "request-42")
        try await h.runtime.send(to: "once", "bye")
        #expect(try await handle.result() == ["hello", "bye"])
        let rows = try await h.query("SELECT message_uuid FROM dbos.notifications WHERE destination_uuid = 'once'")
        #expect(rows.rows.count == 2)
        #expect(rows.rows.filter { $0.string(0) == "request-42::once" }.count == 1)
        await h.runtime.shutdown()
    }

    @Test("a workflow sends to another workflow, once")
    func sendFromWorkflow() async throws {
        let h = try await harness("msg_wf")
        let receiver = try await h.runtime.start(AwaitApproval.self, 20_000, id: "receiver")
        let sender = try await h.runtime.start(Forward.self, "receiver", id: "sender")
        #expect(try await sender.result() == true)
        #expect(try await receiver.result() == Approval(approved: true, by: "forwarder"))
        let steps = try await h.query("SELECT function_name FROM dbos.operation_outputs WHERE workflow_uuid = 'sender'")
        #expect(steps.rows.map { $0.string(0) } == ["DBOS.send"])
        await h.runtime.shutdown()
    }

    @Test("sending to a workflow that does not exist is a clear error")
    func unknownDestination() async throws {
        let h = try await harness("msg_unknown")
        await #expect(throws: DurableError.self) {
            try await h.runtime.send(to: "nobody", "hi")
        }
        do {
            try await h.runtime.send(to: "nobody", "hi")
        } catch let error as DurableError {
            #expect(error.code == .workflowNotFound)
        }
        // From inside a workflow the same error surfaces as the workflow's failure.
        let handle = try await h.runtime.start(Forward.self, "nobody", id: "forward-to-nobody")
        do {
            _ = try await handle.result()
            Issue.record("expected the workflow to fail")
        } catch let error as DurableError {
            #expect(error.code == .workflowFailed)
            #expect(error.message.contains("does not exist"))
        }
        await h.runtime.shutdown()
    }

    @Test("a message that does not decode fails only its own workflow")
    func undecodableMessage() async throws {
        let h = try await harness("msg_bad")
        let bad = try await h.runtime.start(AwaitApproval.self, 20_000, id: "bad")
        let good = try await h.runtime.start(AwaitApproval.self, 20_000, id: "good")
        try await h.runtime.send(to: "bad", topic: "approval", ["not": "an approval"])
        try await h.runtime.send(to: "good", topic: "approval", Approval(approved: false, by: "cfo"))
        do {
            _ = try await bad.result()
            Issue.record("expected the workflow to fail")
        } catch let error as DurableError {
            #expect(error.code == .corruptedCheckpoint)
            #expect(error.message.contains("could not be decoded"))
        }
        #expect(try await good.result() == Approval(approved: false, by: "cfo"))
        await h.runtime.shutdown()
    }

    @Test("negative and absurd timeouts are rejected clearly")
    func badTimeouts() async throws {
        let h = try await harness("msg_timeouts")
        for milliseconds in [-1, Int.max / 1_000_000] {
            let handle = try await h.runtime.start(Nap.self, milliseconds)
            do {
                _ = try await handle.result()
                Issue.record("expected \(milliseconds) ms to be rejected")
            } catch let error as DurableError {
                #expect(error.code == .workflowFailed)
                #expect(error.errorName == "DurableError")
                #expect(error.message.contains("duration"))
            }
        }
        do {
            let _: Int? = try await h.runtime.getEvent("x", key: "k", timeout: .seconds(-1))
            Issue.record("expected a negative timeout to be rejected")
        } catch let error as DurableError {
            #expect(error.code == .invalidArgument)
        }
        await h.runtime.shutdown()
    }

    @Test("getEvent waits for an event and sees its latest value; history keeps every value")
    func events() async throws {
        let h = try await harness("msg_events")
        let missing: Int? = try await h.runtime.getEvent("nothing-yet", key: "progress", timeout: .milliseconds(100))
        #expect(missing == nil)
        let handle = try await h.runtime.start(Progress.self, 3, id: "job")
        let done = try await h.runtime.getEvent("job", key: "done", as: Bool.self, timeout: .seconds(20))
        #expect(done == true)
        #expect(try await h.runtime.getEvent("job", key: "progress", as: Int.self, timeout: .seconds(1)) == 3)
        #expect(try await handle.result() == 3)
        let history = try await h.query(
            "SELECT function_id, value FROM dbos.workflow_events_history WHERE workflow_uuid = 'job' AND key = 'progress' ORDER BY 1"
        )
        #expect(history.rows.map { $0.string(1) } == ["1", "2", "3"])
        await h.runtime.shutdown()
    }

    @Test("a durable sleep resumed after a restart sleeps only the remaining time", .tags(.slow), .skippedInFastRuns)
    func sleepResumesRemainingTime() async throws {
        let url = try await TestDatabase.fresh("msg_sleep").url
        let first = MessagingHarness.makeRuntime(url: url, executorID: "sleeper") { $0.register(Nap()) }
        try await first.launch()
        // 30 s: the shutdown must fall inside the sleep however long the machine stalls; the restart comes 2 s
        // before the wake-up, so the test does not wait the whole sleep twice.
        _ = try await first.start(Nap.self, 30_000, id: "nap")
        let h = MessagingHarness(url: url, runtime: first)
        // Interrupt once the wake-up time is checkpointed.
        var recordedWake: Double?
        while recordedWake == nil {
            recordedWake = try await h.query("SELECT output FROM dbos.operation_outputs WHERE workflow_uuid = 'nap'")
                .first?.string(0).flatMap(Double.init)
            if recordedWake == nil { try await Task.sleep(for: .milliseconds(20)) }
        }
        let wake = try #require(recordedWake)
        await first.shutdown()  // the sleeping workflow is interrupted and stays PENDING
        while wake - Date().timeIntervalSince1970 > 2 { try await Task.sleep(for: .milliseconds(50)) }

        let second = MessagingHarness.makeRuntime(url: url, executorID: "sleeper") { $0.register(Nap()) }
        try await second.launch()  // recovers the sleeping workflow
        let launched = Date().timeIntervalSince1970
        let handle: WorkflowHandle<Int> = second.handle(for: "nap")
        #expect(try await handle.result() == 30_000)
        let finished = Date().timeIntervalSince1970
        #expect(finished >= wake - 0.05)
        // A fresh 30 s sleep after the restart would end at least 28 s after both marks below; 20 s leaves room
        // for a stalled machine (2.5 s was missed by 0.1 s in a full parallel run).
        #expect(finished < max(wake, launched) + 20)
        #expect(try await handle.status().recoveryAttempts == 2)
        await second.shutdown()
    }
}
