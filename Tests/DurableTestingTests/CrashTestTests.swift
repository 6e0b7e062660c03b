import Durable
import DurableTesting
import Logging
import Testing

@Suite("Crash tests without a child process")
struct CrashTestTests {
    @Test("a crash after step 2 of 3 replays steps 1 and 2 from their checkpoints and runs step 3 once")
    func crashAfterTwoOfThree() async throws {
        try await withTestRuntime(register: registerTestWorkflows) { runtime in
            let report = try await runtime.crashTest(ThreeSteps.self, 1, crashAfterStep: 2)
            #expect(report.crashAfterStep == 2)
            #expect(
                report.servedFromCheckpoints == [
                    StepRecord(number: 1, name: "one"), StepRecord(number: 2, name: "two"),
                ])
            #expect(report.executedAfterCrash == [StepRecord(number: 3, name: "three")])
            #expect(report.steps.map(\.name) == ["one", "two", "three"])
            #expect(try report.output == 23)
            // Each body ran once in all: steps 1 and 2 before the crash, step 3 after it.
            for step in ["one", "two", "three"] {
                #expect(BodyRuns.count(report.workflowID, step) == 1, "step \(step)")
            }
            // The workflow was recovered by the restarted runtime (attempt 2), not by this one.
            let status = try #require(try await runtime.status(of: report.workflowID))
            #expect(status.state == .success)
            #expect(status.recoveryAttempts == 2)
            #expect(status.executorID?.hasPrefix("crash-test-") == true)
        }
    }

    @Test("a crash before the first step runs every step after the restart")
    func crashBeforeAnyStep() async throws {
        try await withTestRuntime(register: registerTestWorkflows) { runtime in
            let report = try await runtime.crashTest(ThreeSteps.self, 1, crashAfterStep: 0)
            #expect(report.servedFromCheckpoints.isEmpty)
            #expect(report.executedAfterCrash.map(\.name) == ["one", "two", "three"])
            #expect(try report.output == 23)
            for step in ["one", "two", "three"] {
                #expect(BodyRuns.count(report.workflowID, step) == 1, "step \(step)")
            }
        }
    }

    @Test("a crash after the last step, before the outcome is recorded, replays every step")
    func crashAfterLastStep() async throws {
        try await withTestRuntime(register: registerTestWorkflows) { runtime in
            let report = try await runtime.crashTest(ThreeSteps.self, 4, crashAfterStep: 3)
            #expect(report.servedFromCheckpoints.map(\.name) == ["one", "two", "three"])
            #expect(report.executedAfterCrash.isEmpty)
            #expect(try report.output == 53)
            for step in ["one", "two", "three"] {
                #expect(BodyRuns.count(report.workflowID, step) == 1, "step \(step)")
            }
        }
    }

    @Test("a crash test works in a schema of another name, and the runtime it starts from need not be launched")
    func otherSchemaUnlaunchedRuntime() async throws {
        try await withTestDatabase { url in
            let runtime = DurableRuntime(
                configuration: DurableConfiguration(databaseURL: url, schema: "Order \"Flows\"", maxConnections: 3),
                logger: Logger(label: "quiet", factory: { _ in SwiftLogNoOpLogHandler() }))
            registerTestWorkflows(runtime)
            let report = try await runtime.crashTest(ThreeSteps.self, 2, crashAfterStep: 1)
            #expect(report.servedFromCheckpoints.map(\.name) == ["one"])
            #expect(report.executedAfterCrash.map(\.name) == ["two", "three"])
            #expect(try report.output == 33)
            await runtime.shutdown()
        }
    }

    @Test("a crash point past the workflow's last step is refused, saying how many steps it has")
    func crashPointTooLate() async throws {
        try await withTestRuntime(register: registerTestWorkflows) { runtime in
            let error = await expectDurableError(.invalidArgument) {
                try await runtime.crashTest(ThreeSteps.self, 1, crashAfterStep: 4)
            }
            #expect(error?.message.contains("finished after 3 steps") == true, "\(String(describing: error))")
            await expectDurableError(.invalidArgument) {
                try await runtime.crashTest(ThreeSteps.self, 1, crashAfterStep: -1)
            }
        }
    }

    @Test("a replay that asks for a differently named step is reported as non-deterministic")
    func renamedStepIsReported() async throws {
        try await withTestRuntime(register: registerTestWorkflows) { runtime in
            let error = await expectDurableError(.nonDeterministicWorkflow) {
                try await runtime.crashTest(RenamesOnReplay.self, 1, crashAfterStep: 2)
            }
            #expect(error?.message.contains("two-renamed") == true, "\(String(describing: error))")
            #expect(
                error?.message.contains("after a simulated crash after step 2") == true, "\(String(describing: error))")
        }
    }

    @Test("a replay that skips a step recorded before the crash is reported as non-deterministic")
    func skippedStepIsReported() async throws {
        try await withTestRuntime(register: registerTestWorkflows) { runtime in
            let error = await expectDurableError(.nonDeterministicWorkflow) {
                try await runtime.crashTest(ShortcutOnReplay.self, 1, crashAfterStep: 2)
            }
            #expect(error?.message.contains("2 'two'") == true, "\(String(describing: error))")
        }
    }

    @Test("a workflow's own failure after the restart is its outcome, with the steps that led there")
    func failureIsTheOutcome() async throws {
        try await withTestRuntime(register: registerTestWorkflows) { runtime in
            let report = try await runtime.crashTest(ReleasesThenRefuses.self, 7, crashAfterStep: 2)
            #expect(report.servedFromCheckpoints.map(\.name) == ["reserve", "release"])
            #expect(report.executedAfterCrash.isEmpty)
            guard case .failure(let error) = report.result else {
                Issue.record("expected the workflow to fail, got \(report.result)")
                return
            }
            #expect(error.code == .workflowFailed)
            #expect(error.errorName == "Refusal")
            #expect(throws: DurableError.self) { try report.output }
            #expect(BodyRuns.count(report.workflowID, "reserve") == 1)
            #expect(BodyRuns.count(report.workflowID, "release") == 1)
        }
    }

    @Test("a workflow that never reaches the crash point fails the test at the timeout")
    func neverReachesTheCrash() async throws {
        try await withTestRuntime(register: registerTestWorkflows) { runtime in
            let started = ContinuousClock.now
            let error = await expectDurableError(.timedOut) {
                try await runtime.crashTest(WaitsForever.self, 1, crashAfterStep: 2, timeout: .milliseconds(500))
            }
            #expect(
                error?.message.contains("did not reach the crash after step 2") == true, "\(String(describing: error))")
            // Bounded, not a speed check: the wait itself is an hour.
            #expect(ContinuousClock.now - started < .seconds(60))
        }
    }

    @Test("a crash test needs a workflow ID nobody used")
    func takenIDIsRefused() async throws {
        try await withTestRuntime(register: registerTestWorkflows) { runtime in
            _ = try await runtime.start(ThreeSteps.self, 1, id: "taken").result(timeout: .seconds(60))
            let error = await expectDurableError(.invalidArgument) {
                try await runtime.crashTest(ThreeSteps.self, 1, crashAfterStep: 1, id: "taken")
            }
            #expect(error?.message.contains("exists already") == true, "\(String(describing: error))")
        }
    }

    @Test("every crash point of a three-step workflow: after step 0, 1, 2 and 3")
    func everyStepOfThree() async throws {
        try await withTestRuntime(register: registerTestWorkflows) { runtime in
            let reports = try await runtime.crashTestEveryStep(ThreeSteps.self, 2)
            #expect(reports.map(\.crashAfterStep) == [0, 1, 2, 3])
            for report in reports {
                let n = report.crashAfterStep
                #expect(try report.output == 33, "crash after step \(n)")
                #expect(
                    report.servedFromCheckpoints.map(\.number) == Array(0..<n).map { $0 + 1 }, "crash after step \(n)")
                #expect(report.executedAfterCrash.count == 3 - n, "crash after step \(n)")
                for step in ["one", "two", "three"] {
                    #expect(BodyRuns.count(report.workflowID, step) == 1, "crash after step \(n), step \(step)")
                }
            }
        }
    }

    @Test("every crash point of a workflow that sleeps, receives, runs a child and sets an event")
    func everyStepOfAssorted() async throws {
        try await withTestRuntime(register: registerTestWorkflows) { runtime in
            let reports = try await runtime.crashTestEveryStep(Assorted.self, "child")
            #expect(reports.map(\.crashAfterStep) == Array(0...7))
            for report in reports {
                let n = report.crashAfterStep
                #expect(try report.output == "a-CHILDz", "crash after step \(n)")
                #expect(
                    report.steps.map(\.name) == [
                        "first", "DBOS.sleep", "DBOS.recv", "DBOS.sleep", "shout", "DBOS.setEvent", "last",
                    ],
                    "crash after step \(n)")
                // What was recorded before the crash is served, the rest executed; a crash "after" the recv's first
                // position comes once the whole recv completed, so it covers both of its positions.
                let served = report.servedFromCheckpoints.map(\.number)
                let expected = n == 3 ? 4 : n
                #expect(served == Array(0..<expected).map { $0 + 1 }, "crash after step \(n)")
                #expect(report.executedAfterCrash.count == 7 - expected, "crash after step \(n)")
                #expect(BodyRuns.count(report.workflowID, "first") == 1, "crash after step \(n)")
                #expect(BodyRuns.count(report.workflowID, "last") == 1, "crash after step \(n)")
                #expect(BodyRuns.count("\(report.workflowID)-5", "shout") == 1, "crash after step \(n)")
            }
        }
    }
}
