import Durable
import Foundation
import TestSupport
import Testing

/// Runs `count` steps, each taking ~100 ms inside its body.
struct Grind: Workflow {
    static let name = "grind"
    func run(_ ctx: WorkflowContext, _ count: Int) async throws -> Int {
        for index in 0..<count {
            _ = try await ctx.step("grind-\(index)") {
                try? await Task.sleep(for: .milliseconds(100))
                return index
            }
        }
        return count
    }
}

/// A step whose body ignores cancellation for `milliseconds` (a blocking call would do the same), then a plain
/// step: a run whose task was cancelled meanwhile stops there.
struct Stubborn: Workflow {
    static let name = "stubborn"
    func run(_ ctx: WorkflowContext, _ milliseconds: Int) async throws -> Int {
        let waited = try await ctx.step("stubborn-step") {
            RunCounts.note("stubborn-began-\(ctx.workflowID)")
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(milliseconds)) {
                    continuation.resume()
                }
            }
            return milliseconds
        }
        return try await ctx.step("stubborn-done") { waited }
    }
}

struct ChildInput: Codable, Sendable {
    var value: Int
    var napMilliseconds: Int
}

/// Doubles its input after a durable nap; counts its runs.
struct Doubler: Workflow {
    static let name = "doubler"
    func run(_ ctx: WorkflowContext, _ input: ChildInput) async throws -> Int {
        _ = AttemptCounter.shared.next("doubler-body-\(ctx.workflowID)")
        try await ctx.sleep(for: .milliseconds(input.napMilliseconds))
        return input.value * 2
    }
}

/// Starts a child, naps, then awaits the child.
struct Parent: Workflow {
    static let name = "parent"
    func run(_ ctx: WorkflowContext, _ input: ChildInput) async throws -> Int {
        let child = try await ctx.startChild(Doubler.self, input)
        try await ctx.sleep(for: .milliseconds(input.napMilliseconds))
        return try await child.result() + 1
    }
}

@Suite("Cancel, resume, timeouts and child workflows")
struct ControlAndChildrenTests {
    static func register(_ runtime: DurableRuntime) {
        runtime.register(Nap())
        runtime.register(AwaitApproval())
        runtime.register(Grind())
        runtime.register(Doubler())
        runtime.register(Parent())
        runtime.register(Stubborn())
    }

    func harness(_ prefix: String, executorID: String = "control") async throws -> MessagingHarness {
        try await MessagingHarness.make(prefix: prefix, executorID: executorID, register: Self.register)
    }

    func expectCancelled<Output>(_ handle: WorkflowHandle<Output>, within bound: Duration = .seconds(30)) async throws {
        // The bound only tells a prompt cancel from the 60 s sleeps these workflows would otherwise finish; a
        // loaded machine stretches the cancel's path (timer, database write, result polling) well past a second.
        let started = ContinuousClock.now
        do {
            _ = try await handle.result()
            Issue.record("expected \(handle.id) to be cancelled")
        } catch let error as DurableError {
            #expect(error.code == .workflowCancelled)
        }
        #expect(started.duration(to: .now) < bound)
        #expect(try await handle.status().state == .cancelled)
    }

    @Test("cancel stops a sleeping workflow at once")
    func cancelSleeping() async throws {
        let h = try await harness("cancel_sleep")
        let handle = try await h.runtime.start(Nap.self, 60_000, id: "sleeper")
        try await Task.sleep(for: .milliseconds(200))
        try await h.runtime.cancel("sleeper")
        try await expectCancelled(handle)
        await h.runtime.shutdown()
    }

    @Test("cancel stops a workflow waiting for a message")
    func cancelWaiting() async throws {
        let h = try await harness("cancel_wait")
        let handle = try await h.runtime.start(AwaitApproval.self, 60_000, id: "waiter")
        try await Task.sleep(for: .milliseconds(200))
        try await h.runtime.cancel("waiter")
        try await expectCancelled(handle)
        await h.runtime.shutdown()
    }

    @Test("cancel stops a running workflow at its next step")
    func cancelRunning() async throws {
        let h = try await harness("cancel_run")
        // 600 steps of 100 ms: a minute, far longer than any stall, so the cancel surely comes mid-way.
        let handle = try await h.runtime.start(Grind.self, 600, id: "grinder")
        let count = "SELECT count(*) FROM dbos.operation_outputs WHERE workflow_uuid = 'grinder'"
        let deadline = ContinuousClock.now.advanced(by: .seconds(60))
        while (try await h.query(count).first?.int(0) ?? 0) == 0, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        try #require((try await h.query(count).first?.int(0) ?? 0) > 0, "no step was recorded")
        try await h.runtime.cancel("grinder")
        let atCancel = try await h.query(count).first?.int(0) ?? 0
        try await expectCancelled(handle)
        // At most the step under way when the cancel landed was recorded after it; no further step ran (a run that
        // went on would record one every 100 ms: a second is room for several).
        try await Task.sleep(for: .seconds(1))
        let final = try await h.query(count).first?.int(0) ?? 600
        #expect(final <= atCancel + 1, "\(final - atCancel) steps recorded after the cancel")
        await h.runtime.shutdown()
    }

    @Test("a cancel from another process reaches the running one through NOTIFY")
    func cancelFromElsewhere() async throws {
        let h = try await harness("cancel_remote", executorID: "runner")
        let handle = try await h.runtime.start(Nap.self, 60_000, id: "remote-sleeper")
        let other = MessagingHarness.makeRuntime(url: h.url, executorID: "operator", register: Self.register)
        try await other.launch()
        try await Task.sleep(for: .milliseconds(300))
        try await other.cancel("remote-sleeper")
        try await expectCancelled(handle)
        await other.shutdown()
        await h.runtime.shutdown()
    }

    @Test("resume runs a cancelled workflow again from its last checkpoint", .tags(.slow), .skippedInFastRuns)
    func resumeAfterCancel() async throws {
        let h = try await harness("resume")
        let nap = 12_000
        let started = Date()
        let handle = try await h.runtime.start(Nap.self, nap, id: "napper")
        // Cancel once the sleep's wake-up time is recorded (a fixed pause was sometimes too short under load: the
        // resumed run then recorded a fresh wake-up time). The nap is long so that a machine stalled for several
        // seconds at the start of a test run still cancels it mid-sleep (a 4 s nap once finished before the cancel).
        #expect(try await h.waitForSleepCheckpoint(of: "napper", timeout: .seconds(60)))
        try await h.runtime.cancel("napper")
        try await expectCancelled(handle)
        let recordedWake = try await h.query(
            "SELECT output FROM dbos.operation_outputs WHERE workflow_uuid = 'napper' AND function_name = 'DBOS.sleep'")
        try await h.runtime.resume("napper")
        #expect(try await handle.result() == nap)
        // The sleep's checkpointed wake-up time was kept (one checkpoint, unchanged): it did not start a fresh
        // sleep after the resume. (Checked in the database, not by the clock: a loaded machine stretches both.)
        let afterResume = try await h.query(
            "SELECT output FROM dbos.operation_outputs WHERE workflow_uuid = 'napper' AND function_name = 'DBOS.sleep'")
        #expect(afterResume.rows.count == 1)
        #expect(afterResume.first?.string(0) != nil && afterResume.first?.string(0) == recordedWake.first?.string(0))
        #expect(Date() >= started.addingTimeInterval(Double(nap) / 1000 - 0.05))  // and it did sleep until then
        #expect(try await handle.status().state == .success)
        await h.runtime.shutdown()
    }

    @Test("a timeout cancels the workflow at its deadline")
    func timeout() async throws {
        let h = try await harness("timeout")
        let handle = try await h.runtime.start(Nap.self, 60_000, id: "slow", timeout: .milliseconds(300))
        try await expectCancelled(handle)
        await h.runtime.shutdown()
    }

    @Test(
        "a run that lost its workflow to a cancel and a resume elsewhere does not cancel the new run when its own deadline passes",
        .tags(.slow), .skippedInFastRuns)
    func staleDeadlineLeavesResumedRunAlone() async throws {
        let url = try await TestDatabase.fresh("stale_deadline").url
        let first = MessagingHarness.makeRuntime(url: url, executorID: "first") { $0.register(Stubborn()) }
        let second = MessagingHarness.makeRuntime(url: url, executorID: "second") { $0.register(Stubborn()) }
        try await first.launch()
        try await second.launch()
        let id = "stubborn-one"
        // The first run's step ignores the cancel below, so its run, and its deadline timer, outlive the cancel.
        // A 15 s deadline and a 20 s step: the step must begin, and the cancel and resume land, before the deadline
        // however long the machine stalls (with 3 s, a stall let the deadline cancel the workflow before its step
        // began, and the wait below never ended); the resumed run is still running when the old timer fires.
        _ = try await first.start(Stubborn.self, 20_000, id: id, timeout: .seconds(15))
        try #require(await Self.began(id), "the workflow's step never began")
        try await second.cancel(id)
        try await second.resume(id)  // runs here afresh, with no deadline (as DBOS's resume)
        // Running again (or, on a machine stalled past its 20 s step, already done): not cancelled.
        let afterResume = try await second.status(of: id)?.state
        #expect(afterResume == .pending || afterResume == .success)
        // The first run's timer fires at 15 s; before the fix it cancelled the resumed run then.
        #expect(try await finalState(of: id, on: second) == .success)
        // Bounded: a workflow stranded PENDING would otherwise hang the run here.
        #expect(
            try await valueWithin(.seconds(10)) { try await second.handle(for: id, resultType: Int.self).result() }
                == 20_000)
        await first.shutdown()
        await second.shutdown()
    }

    /// Whether a `Stubborn` workflow's step has begun, waiting up to a minute (a bound, so a workflow that never
    /// gets there fails the test instead of hanging the run).
    static func began(_ id: String) async -> Bool {
        let deadline = ContinuousClock.now.advanced(by: .seconds(60))
        while RunCounts.count("stubborn-began-\(id)") == 0 {
            guard ContinuousClock.now < deadline else { return false }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return true
    }

    /// The workflow's state once it stops being PENDING, or PENDING after a minute (a hang fails, not stalls).
    func finalState(of id: String, on runtime: DurableRuntime) async throws -> WorkflowState? {
        var state = try await runtime.status(of: id)?.state
        let deadline = ContinuousClock.now.advanced(by: .seconds(60))
        while state == .pending, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
            state = try await runtime.status(of: id)?.state
        }
        return state
    }

    @Test("a cancel notification that arrives after a resume leaves the resumed run alone")
    func lateCancelNotification() async throws {
        let h = try await harness("late_cancel_notify", executorID: "first")
        let second = MessagingHarness.makeRuntime(url: h.url, executorID: "second", register: Self.register)
        try await second.launch()
        let id = "resumed-before-the-news"
        _ = try await h.runtime.start(Stubborn.self, 1_000, id: id)
        try #require(await Self.began(id), "the workflow's step never began")
        try await second.cancel(id)
        try await second.resume(id)  // runs at once in `second`, its first step ignoring cancellation for 1 s
        // The cancel's NOTIFY, reaching `second` late: under load it once came after the resumed run had started,
        // stopped that run at its next step and left the workflow PENDING for good.
        _ = try await h.query("SELECT pg_notify('durable_workflow_cancelled', $1)", [id])
        #expect(try await finalState(of: id, on: second) == .success)
        await h.runtime.shutdown()
        await second.shutdown()
    }

    @Test("children inherit the parent's deadline")
    func timeoutWithChildren() async throws {
        let h = try await harness("timeout_children")
        let handle = try await h.runtime.start(
            Parent.self, ChildInput(value: 1, napMilliseconds: 60_000), id: "family", timeout: .seconds(2))
        try await expectCancelled(handle)
        let rows = try await h.query(
            """
            SELECT c.parent_workflow_id, c.workflow_deadline_epoch_ms = p.workflow_deadline_epoch_ms
            FROM dbos.workflow_status c JOIN dbos.workflow_status p ON p.workflow_uuid = 'family'
            WHERE c.workflow_uuid = 'family-1'
            """)
        if rows.rows.isEmpty {
            // So busy a machine that the parent reached its deadline before starting the child: then it must not
            // start it at all (each durable operation checks the deadline), which is just as correct.
            #expect(
                try await h.query("SELECT count(*) FROM dbos.operation_outputs WHERE workflow_uuid = 'family'").first?
                    .int(0) == 0)
        } else {
            let child: WorkflowHandle<Int> = h.runtime.handle(for: "family-1")
            try await expectCancelled(child)
            #expect(rows.first?.string(0) == "family")
            #expect(rows.first?.bool(1) == true)  // the same deadline as its parent
        }
        await h.runtime.shutdown()
    }

    @Test(
        "a child workflow runs once, and a recovered parent gets the same child back",
        .tags(.slow), .skippedInFastRuns)
    func childWorkflows() async throws {
        let url = try await TestDatabase.fresh("children").url
        let first = MessagingHarness.makeRuntime(url: url, executorID: "family", register: Self.register)
        try await first.launch()
        let id = "kin-\(UUID())"
        // 15 s naps: both must still be asleep at the shutdown below, however long the machine stalls first.
        _ = try await first.start(Parent.self, ChildInput(value: 20, napMilliseconds: 15_000), id: id)
        // Interrupt once the child has started (a busy machine may take a while to get there).
        while AttemptCounter.shared.count("doubler-body-\(id)-1") == 0 { try await Task.sleep(for: .milliseconds(20)) }
        await first.shutdown()  // parent and child stay PENDING mid-sleep

        let second = MessagingHarness.makeRuntime(url: url, executorID: "family", register: Self.register)
        try await second.launch()
        #expect(try await second.handle(for: id, resultType: Int.self).result() == 41)
        let h = MessagingHarness(url: url, runtime: second)
        let children = try await h.query(
            "SELECT workflow_uuid, status FROM dbos.workflow_status WHERE parent_workflow_id = $1", [id])
        #expect(children.rows.map { $0.string(0) } == ["\(id)-1"])
        #expect(children.first?.string(1) == "SUCCESS")
        let record = try await h.query(
            "SELECT function_name, child_workflow_id FROM dbos.operation_outputs WHERE workflow_uuid = $1 AND function_id = 1",
            [id])
        #expect(record.first?.string(0) == "doubler")
        #expect(record.first?.string(1) == "\(id)-1")
        // The child's body started once in the first process and once more on recovery, never as a second child.
        #expect(AttemptCounter.shared.count("doubler-body-\(id)-1") == 2)
        await second.shutdown()
    }

    @Test("bad input: unknown workflow, non-positive timeout")
    func badInput() async throws {
        let h = try await harness("control_bad")
        do {
            try await h.runtime.cancel("no-such-workflow")
            Issue.record("expected workflowNotFound")
        } catch let error as DurableError {
            #expect(error.code == .workflowNotFound)
        }
        do {
            try await h.runtime.resume("no-such-workflow")
            Issue.record("expected workflowNotFound")
        } catch let error as DurableError {
            #expect(error.code == .workflowNotFound)
        }
        do {
            _ = try await h.runtime.start(Nap.self, 1, timeout: .seconds(-5))
            Issue.record("expected invalidArgument")
        } catch let error as DurableError {
            #expect(error.code == .invalidArgument)
        }
        await h.runtime.shutdown()
    }
}
