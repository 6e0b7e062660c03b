import Durable
import Foundation

/// What a crash test saw: the steps the recovered run was served from checkpoints and those it ran, and how the
/// workflow ended.
public struct CrashTestReport<Output: Codable & Sendable>: Sendable {
    /// The ID of the workflow the test started.
    public let workflowID: String
    /// The step after which the first run was stopped.
    public let crashAfterStep: Int
    /// The steps recorded before the crash, in order. The recovered run reached every one of them and was served
    /// its checkpoint: their bodies did not run again. (Usually steps 1…``crashAfterStep``; a `recv` records two
    /// positions, its own and its timeout's.)
    public let servedFromCheckpoints: [StepRecord]
    /// The steps the recovered run executed and recorded, in order: those after the crash.
    public let executedAfterCrash: [StepRecord]
    /// Every recorded step of the workflow at the end, in order.
    public let steps: [StepRecord]
    /// How the recovered workflow ended: its result, or the error it ended with (code `workflowFailed` when the
    /// workflow threw, `workflowCancelled` when it was cancelled).
    public let result: Result<Output, DurableError>

    /// The recovered workflow's result.
    /// - Throws: the error it ended with (see ``result``).
    public var output: Output {
        get throws(DurableError) { try result.get() }
    }
}

/// Crash tests: run a workflow, stop it after a given step as a crash would, and check how it recovers.
extension DurableRuntime {
    /// Proves that a workflow survives a crash after a given step, in this process, without a child process.
    ///
    /// The test runs the workflow in a runtime of its own, stops that run the moment it has completed step
    /// `crashAfterStep` (as a crash would: nothing more is written, the workflow stays `PENDING`), shuts that
    /// runtime down as if its process had died, then launches another runtime under the same executor ID, whose
    /// recovery resumes the workflow from its checkpoints, as a restarted process would. It checks that the
    /// recovered run reached every step recorded before the crash (so each was served from its checkpoint and its
    /// body did not run again) and returns what it saw.
    ///
    /// ```swift
    /// let report = try await runtime.crashTest(BookTrip.self, trip, crashAfterStep: 2)
    /// #expect(report.servedFromCheckpoints.map(\.name) == ["reserve-flight", "charge-card"])
    /// #expect(try report.output.seat == "15F")
    /// #expect(payments.charges == 1)            // your own fake: the card was charged once
    /// ```
    ///
    /// Both runtimes have this runtime's configuration, logger, workflows and queues, under an executor ID of
    /// their own (`crash-test-…`), so they never pick up this runtime's workflows (nor serve its queues, take over
    /// other executors or fire its schedules). This runtime need not be launched.
    ///
    /// Steps are numbered as the library numbers every durable operation: `step`, `transaction`, `sleep`, `send`,
    /// `recv`, `setEvent`, stream writes, children, `now`, `randomUUID`… from 1. The crash comes when the run
    /// begins its next operation after step `crashAfterStep`, or would record its outcome or park at a long sleep
    /// (so code between steps runs up to there, as it may before a real crash). 0 stops it before its first step.
    ///
    /// - Parameters:
    ///   - workflow: a workflow registered on this runtime.
    ///   - input: its input.
    ///   - crashAfterStep: the number of the last step completed before the crash, 0 or more.
    ///   - id: the workflow ID, which must be new; a random one by default.
    ///   - timeout: how long the first run may take to reach the crash, and the recovered one to finish.
    /// - Returns: the report; its ``CrashTestReport/result`` holds the workflow's own failure when it threw.
    /// - Throws: `DurableError` when the workflow does not survive the crash: `nonDeterministicWorkflow` when the
    ///   recovered run asked for other steps than the ones recorded (the library's own check) or ended without
    ///   reaching all of them (this test's); `corruptedCheckpoint` when a recorded value no longer decodes;
    ///   `timedOut`; `invalidArgument` when the workflow ends before completing `crashAfterStep` steps, or the ID
    ///   is taken.
    public func crashTest<W: Workflow>(
        _ workflow: W.Type,
        _ input: W.Input,
        crashAfterStep: Int,
        id: String? = nil,
        timeout: Duration = .seconds(60)
    ) async throws -> CrashTestReport<W.Output> {
        let id = id ?? Self.newCrashTestID()
        switch try await runCrashTest(workflow, input, crashAfterStep: crashAfterStep, id: id, timeout: timeout) {
        case .crashed(let report):
            return report
        case .notReached(let firstRun):
            throw DurableError(
                .invalidArgument, "cannot crash the workflow after step \(crashAfterStep): \(firstRun.story)",
                workflowID: id)
        }
    }

    /// Crash-tests a workflow after every one of its steps: ``crashTest(_:_:crashAfterStep:id:timeout:)`` with
    /// `crashAfterStep` 0, 1, 2… each on a new workflow, until a run finishes before the crash point.
    ///
    /// ```swift
    /// for report in try await runtime.crashTestEveryStep(BookTrip.self, trip) {
    ///     #expect(try report.output == expected, "crash after step \(report.crashAfterStep)")
    /// }
    /// ```
    ///
    /// The workflow must end on its own (no message that nobody sends, no sleep long enough to park it), and it
    /// runs once per step plus once more: the last run, which finishes uncrashed, ends the sweep.
    ///
    /// - Returns: one report per crash point, in order; the first is for a crash before any step.
    /// - Throws: what ``crashTest(_:_:crashAfterStep:id:timeout:)`` throws, for the first crash point that fails.
    public func crashTestEveryStep<W: Workflow>(
        _ workflow: W.Type,
        _ input: W.Input,
        timeout: Duration = .seconds(60)
    ) async throws -> [CrashTestReport<W.Output>] {
        let prefix = Self.newCrashTestID()
        var reports: [CrashTestReport<W.Output>] = []
        while true {
            let step = reports.count
            let id = "\(prefix)-after-\(step)"
            switch try await runCrashTest(workflow, input, crashAfterStep: step, id: id, timeout: timeout) {
            case .crashed(let report):
                reports.append(report)
            case .notReached(let firstRun):
                // The workflow finished before this crash point: every earlier one has been tried.
                guard firstRun.ending == .succeeded || firstRun.ending == .failed else {
                    throw DurableError(
                        .invalidArgument, "cannot crash the workflow after step \(step): \(firstRun.story)",
                        workflowID: id)
                }
                return reports
            }
        }
    }

    private enum CrashTestRun<Output: Codable & Sendable> {
        case crashed(CrashTestReport<Output>)
        /// The first run ended before the crash point.
        case notReached(RunReport)
    }

    private static func newCrashTestID() -> String {
        "crash-test-\(UUID().uuidString.lowercased())"
    }

    private func runCrashTest<W: Workflow>(
        _ workflow: W.Type,
        _ input: W.Input,
        crashAfterStep step: Int,
        id: String,
        timeout: Duration
    ) async throws -> CrashTestRun<W.Output> {
        guard step >= 0 else {
            throw DurableError(.invalidArgument, "crashAfterStep must be 0 or more (got \(step))", workflowID: id)
        }
        guard timeout > .zero else {
            throw DurableError(.invalidArgument, "the timeout must be positive (got \(timeout))", workflowID: id)
        }
        var configuration = self.configuration
        configuration.executorID = "crash-test-\(UUID().uuidString.lowercased().prefix(8))"
        configuration.mode = .worker
        configuration.allowsSharedExecutorID = false
        configuration.servedQueues = []
        configuration.takeoverAfter = nil

        // The first process: runs the workflow until the crash point.
        let crashing = sibling(configuration: configuration)
        let firstEnd = OneShot<RunReport>()
        crashing.watchNextRun(of: id, RunWatch(crashAfterStep: step) { firstEnd.fulfil($0) })
        let firstRun: RunReport
        do {
            if try await crashing.status(of: id) != nil {
                throw DurableError(
                    .invalidArgument,
                    "a workflow with this ID exists already; a crash test starts a new workflow, so give it a new ID",
                    workflowID: id)
            }
            _ = try await crashing.start(workflow, input, id: id)
            guard let report = await firstEnd.value(within: timeout) else {
                try Task.checkCancellation()
                throw DurableError(
                    .timedOut,
                    "the workflow did not reach the crash after step \(step) within \(timeout); it may be waiting for a message, a sleep or a step that does not return",
                    workflowID: id)
            }
            firstRun = report
        } catch {
            await crashing.shutdown()
            throw error
        }
        // Its process is gone: its other runs (children) stop where they are, and its executor ID is free again.
        await crashing.shutdown()
        guard firstRun.ending == .crashed else { return .notReached(firstRun) }

        // The restarted process: its launch recovers the workflow from the checkpoints the first one left.
        let restarted = sibling(configuration: configuration)
        let secondEnd = OneShot<RunReport>()
        restarted.watchNextRun(of: id, RunWatch { secondEnd.fulfil($0) })
        let result: Result<W.Output, DurableError>
        let recovery: RunReport
        do {
            try await restarted.launch()
            result = try await recoveredOutcome(
                restarted.handle(for: id, of: W.self), crashAfterStep: step, timeout: timeout)
            guard let report = await secondEnd.value(within: timeout) else {
                try Task.checkCancellation()
                throw DurableError(
                    .timedOut,
                    "after a simulated crash after step \(step), the workflow finished but its recovered run did not end within \(timeout)",
                    workflowID: id)
            }
            recovery = report
        } catch {
            await restarted.shutdown()
            throw error
        }
        await restarted.shutdown()

        let steps = try await StepRecord.load(id, configuration: configuration)
        let recordedBefore = Set(recovery.recordedBefore)
        if recovery.ending == .succeeded || recovery.ending == .failed {
            let unreached = steps.filter { recordedBefore.contains($0.number) && $0.number > recovery.stepsTaken }
            if !unreached.isEmpty {
                let list = unreached.map { "\($0.number) '\($0.name)'" }.joined(separator: ", ")
                throw DurableError(
                    .nonDeterministicWorkflow,
                    """
                    after a simulated crash after step \(step), the recovered run ended after step \(recovery.stepsTaken) without \
                    reaching step \(list), recorded before the crash: the workflow took another path when replayed. Keep the \
                    code between steps deterministic: put time, randomness and every read of the outside world inside steps
                    """, workflowID: id)
            }
        }
        let served = steps.filter { recordedBefore.contains($0.number) && $0.number <= recovery.stepsTaken }
        let executed = steps.filter { !recordedBefore.contains($0.number) }
        return .crashed(
            CrashTestReport(
                workflowID: id, crashAfterStep: step, servedFromCheckpoints: served, executedAfterCrash: executed,
                steps: steps, result: result
            ))
    }

    /// The recovered workflow's result, or the error it ended with when that is the workflow's own (it threw, or
    /// was cancelled); any other error means it did not survive the crash, and is thrown.
    private func recoveredOutcome<Output: Codable & Sendable>(
        _ handle: WorkflowHandle<Output>, crashAfterStep step: Int, timeout: Duration
    ) async throws -> Result<Output, DurableError> {
        do {
            return .success(try await handle.result(timeout: timeout))
        } catch let error as DurableError where error.code == .workflowFailed || error.code == .workflowCancelled {
            return .failure(error)
        } catch let error as DurableError {
            throw DurableError(
                error.code, "after a simulated crash after step \(step) and a restart: \(error.message)",
                workflowID: error.workflowID ?? handle.id, sqlState: error.sqlState, errorName: error.errorName
            )
        }
    }
}

extension RunReport {
    /// How a first run that never reached its crash point ended, in words.
    var story: String {
        let steps = stepsTaken == 1 ? "1 step" : "\(stepsTaken) steps"
        switch ending {
        case .succeeded:
            return "the workflow finished after \(steps), before that point (it can crash after steps 0…\(stepsTaken))"
        case .failed:
            return "the workflow failed after \(steps), before that point (it can crash after steps 0…\(stepsTaken))"
        case .parked:
            return
                "the workflow parked at a long durable sleep (step \(stepsTaken)) before that point; in tests, sleep for less than DurableConfiguration.parkSleepsLongerThan or raise it"
        case .interrupted:
            return
                "the workflow's run was interrupted after \(steps) (cancelled, timed out, or taken by another process) before that point"
        case .crashed:
            return "the workflow crashed after \(steps)"
        }
    }
}
