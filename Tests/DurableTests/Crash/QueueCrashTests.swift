import Durable
import Foundation
import LibPQ
import Logging
import TestSupport
import Testing

/// `DurableQueueWorker`'s job, declared here with the same durable name and input shape so this process can
/// enqueue it. No runtime in this process registers it, so it never runs here.
struct QueueCrashJob: Workflow {
    static let name = "queue-crash-job"

    struct Input: Codable, Sendable {
        var index: Int
        var steps: Int
        var transactionStep: Int
        var stepMilliseconds: Int
    }

    struct RunsOnlyInWorkers: Error {}

    func run(_ ctx: WorkflowContext, _ input: Input) async throws -> Int { throw RunsOnlyInWorkers() }

    /// What the worker's job returns: step k returns `index * 10 + k`.
    static func expectedOutput(_ input: Input) -> Int {
        input.steps * input.index * 10 + input.steps * (input.steps + 1) / 2
    }
}

/// A known workflow for the unknown-name test.
struct QueueCrashDoubler: Workflow {
    static let name = "queue-crash-doubler"
    func run(_ ctx: WorkflowContext, _ input: Int) async throws -> Int {
        try await ctx.step("double") { input * 2 }
    }
}

/// Code for the name the outside client used, registered only by the process that appears later.
struct QueueCrashStranger: Workflow {
    static let name = "no-such-workflow"
    func run(_ ctx: WorkflowContext, _ input: Int) async throws -> Int {
        try await ctx.step("increment") { input + 1 }
    }
}

/// Several `DurableQueueWorker` processes serve one queue; one is SIGKILLed mid-run and never restarted. The
/// survivors notice its silence (heartbeats), take over its PENDING workflows and finish everything. The workers
/// record every effect (`ledger`) and every run of a workflow body (`runs`, with database-clock intervals), which
/// is what the checks below read: the library's own tables alone could not show an effect that ran twice.
@Suite("Queue crash: worker processes sharing a queue, one SIGKILLed", .tags(.crash), .skippedInFastRuns)
struct QueueCrashTests {
    struct Scenario {
        var prefix: String
        var workers: Int
        var workflows: Int
        var concurrency: Int
        var workerConcurrency: Int
        var steps = 5
        var transactionStep = 3
        var stepMilliseconds = 60
    }

    static let queueName = "jobs"
    static let appVersion = "queue-crash"
    static let appSchema = "queue_crash"
    /// Eight heartbeats long (DurableQueueWorker beats every takeover/8): on two loaded cores a live worker must
    /// never look dead, or its workflows would be taken over while running and the effect counts would be wrong.
    /// 15 s, since a machine stalled at the start of a test run has held a process for more than 4 s.
    static let takeoverMilliseconds = 15_000

    @Test(
        "two worker processes share a queue; one is SIGKILLed mid-run: nothing lost, nothing past a checkpoint run twice",
        .tags(.slow))
    func twoWorkers() async throws {
        try await run(Scenario(prefix: "qcrash_two", workers: 2, workflows: 40, concurrency: 4, workerConcurrency: 3))
    }

    @Test(
        "four worker processes share a queue; one is SIGKILLed mid-run: nothing lost, nothing past a checkpoint run twice",
        .tags(.slow))
    func fourWorkers() async throws {
        try await run(Scenario(prefix: "qcrash_four", workers: 4, workflows: 64, concurrency: 6, workerConcurrency: 2))
    }

    // MARK: - The crash scenario

    /// One run of a workflow body, in database-clock microseconds; `end` is nil for a run the kill cut short.
    struct Run {
        var workflow: String
        var executor: String
        var start: Int64
        var end: Int64?
    }

    struct Effect {
        var order: Int64
        var workflow: String
        var step: Int
        var kind: String
        var executor: String
    }

    func run(_ scenario: Scenario) async throws {
        let database = try await TestDatabase.fresh(scenario.prefix)
        let queue = WorkflowQueue(
            Self.queueName, concurrency: scenario.concurrency, workerConcurrency: scenario.workerConcurrency)
        // The test's own runtime only enqueues: it serves no queue and takes nothing over, so every run is in a worker.
        let enqueuer = DurableRuntime(
            configuration: Self.configuration(url: database.url, executor: "enqueuer", served: []),
            logger: Self.quietLogger)
        enqueuer.register(queue: queue)
        try await enqueuer.launch()  // migrates the fresh database before the workers race to
        let app = SQLIdentifier.quote(Self.appSchema)
        try await database.query("CREATE SCHEMA \(app)")
        try await database.query(
            "CREATE TABLE \(app).ledger (id bigserial PRIMARY KEY, workflow_id text NOT NULL, step int NOT NULL, kind text NOT NULL, executor text NOT NULL)"
        )
        try await database.query(
            "CREATE TABLE \(app).runs (id bigserial PRIMARY KEY, workflow_id text NOT NULL, executor text NOT NULL, started_at timestamptz NOT NULL, ended_at timestamptz)"
        )

        var workers: [WorkerProcess] = []
        for index in 0..<scenario.workers {
            workers.append(
                try WorkerProcess(
                    "w\(index)",
                    [
                        "--url", database.url, "--executor", "w\(index)", "--queue", Self.queueName,
                        "--concurrency", "\(scenario.concurrency)", "--worker-concurrency",
                        "\(scenario.workerConcurrency)",
                        "--takeover-ms", "\(Self.takeoverMilliseconds)", "--app-version", Self.appVersion,
                        "--app-schema", Self.appSchema,
                    ], executable: "DurableQueueWorker"))
        }
        for worker in workers {
            guard await worker.waitFor(line: "READY", timeout: .seconds(60)) != nil else { return }
        }

        var inputs: [String: QueueCrashJob.Input] = [:]
        func enqueue(_ count: Int) async throws {
            for index in inputs.count..<(inputs.count + count) {
                let input = QueueCrashJob.Input(
                    index: index, steps: scenario.steps, transactionStep: scenario.transactionStep,
                    stepMilliseconds: scenario.stepMilliseconds)
                let handle = try await enqueuer.enqueue(
                    QueueCrashJob.self, input, queue: Self.queueName, options: EnqueueOptions(id: "job-\(index)"))
                inputs[handle.id] = input
            }
        }
        try await enqueue(scenario.workflows)

        // Kill the victim mid-run: after it has finished two workflows, while one of its workflows has at least
        // three steps to go (so it is still in flight when the signal lands, however slow this machine is). On a
        // loaded machine the other workers can drain the queue before the victim is caught like that (seen in a
        // full run); then another small wave is enqueued, so the kill always lands mid-run.
        let victim = workers[0]
        victim.kill(when: { Self.finishedAndEarly($0, steps: scenario.steps) })
        let waveDeadline = ContinuousClock.now.advanced(by: .seconds(90))
        while victim.isRunning, ContinuousClock.now < waveDeadline {
            try await Task.sleep(for: .milliseconds(200))
            if victim.isRunning, inputs.count < scenario.workflows * 4,
                let waiting = try await database.query(
                    "SELECT count(*) FROM dbos.workflow_status WHERE queue_name = $1 AND status = 'ENQUEUED'",
                    [Self.queueName]
                ).first?.int(0), waiting < scenario.workers * scenario.workerConcurrency
            {
                try await enqueue(scenario.workers * scenario.workerConcurrency)
            }
        }
        guard victim.killedOnCondition else {
            Issue.record(
                "the victim never got to mid-run (\(inputs.count) workflows enqueued); stdout: \(victim.lines.suffix(10)) stderr: \(victim.logLines.suffix(10))"
            )
            return
        }
        let victimEnd = await victim.waitForExit(timeout: .seconds(30))
        #expect(victimEnd?.killedBySIGKILL == true, "victim ended with \(String(describing: victimEnd))")
        // Taken after the process is gone, so every run it cut short ended before this instant.
        // The kill instant on the database's clock (the runs table's): this machine's time of the kill plus the
        // clocks' offset, and the round trip as margin. Asking the database after the kill instead came seconds late
        // on a loaded one-core run, long enough for a takeover to look like an overlap.
        let (offset, margin) = try await Self.databaseClockOffset(database)
        let killedAt =
            Int64(try #require(victim.killedOnConditionAt).timeIntervalSince1970 * 1_000_000) + offset + margin
        let survivors = Array(workers.dropFirst())

        // A hang bound, not a speed bound: the takeover alone waits fifteen seconds.
        let finished = await eventually(timeout: .seconds(90), every: .milliseconds(50)) {
            let counts = try? await database.query(
                """
                SELECT count(*) FILTER (WHERE status = 'SUCCESS'), count(*) FILTER (WHERE status NOT IN ('SUCCESS', 'PENDING', 'ENQUEUED'))
                FROM dbos.workflow_status WHERE queue_name = $1
                """, [Self.queueName]
            ).first
            return counts?.int(0) == inputs.count || (counts?.int(1) ?? 0) > 0
        }
        #expect(finished, "not all workflows finished; survivors' logs: \(survivors.map { $0.logLines.suffix(10) })")
        let tookOver = survivors.contains { survivor in
            survivor.logLines.contains {
                $0.contains("took over the pending workflows of a silent executor") && $0.contains("executor=w0")
            }
        }
        for survivor in survivors {
            #expect(survivor.isRunning, "survivor \(survivor.name) died: \(survivor.logLines.suffix(10))")
            await survivor.kill()
        }

        // Every workflow succeeded, with the output its input calls for.
        let statuses = try await database.query(
            "SELECT workflow_uuid, status, executor_id, recovery_attempts FROM dbos.workflow_status WHERE queue_name = $1",
            [Self.queueName]
        )
        #expect(statuses.rows.count == inputs.count)
        var finalExecutor: [String: String] = [:]
        var attempts: [String: Int] = [:]
        for row in statuses.rows {
            let id = row.string(0) ?? "?"
            #expect(row.string(1) == "SUCCESS", "\(id) ended \(row.string(1) ?? "nil")")
            finalExecutor[id] = row.string(2)
            attempts[id] = row.int(3)
        }
        for (id, input) in inputs.sorted(by: { $0.key < $1.key }) {
            let output: Int? = try? await enqueuer.handle(for: id, resultType: Int.self).result()
            #expect(output == QueueCrashJob.expectedOutput(input), "\(id)")
        }

        let runs = try await database.query(
            """
            SELECT workflow_id, executor, (extract(epoch FROM started_at) * 1000000)::bigint, (extract(epoch FROM ended_at) * 1000000)::bigint
            FROM \(app).runs
            """
        ).rows.map {
            Run(workflow: $0.string(0) ?? "?", executor: $0.string(1) ?? "?", start: $0.int64(2) ?? 0, end: $0.int64(3))
        }
        let effects = try await database.query(
            "SELECT id, workflow_id, step, kind, executor FROM \(app).ledger ORDER BY id"
        ).rows.map {
            Effect(
                order: $0.int64(0) ?? 0, workflow: $0.string(1) ?? "?", step: $0.int(2) ?? 0, kind: $0.string(3) ?? "?",
                executor: $0.string(4) ?? "?")
        }
        await enqueuer.shutdown()

        // The kill must have hit work in progress, or this test would prove nothing about takeover.
        let victimRuns = runs.filter { $0.executor == "w0" }
        let cutShort = Set(victimRuns.filter { $0.end == nil }.map(\.workflow))
        #expect(!cutShort.isEmpty, "the victim had no workflow in flight when it was killed")
        #expect(tookOver, "no survivor logged taking over w0's workflows")
        #expect(!runs.contains { $0.executor != "w0" && $0.end == nil }, "a survivor's run never ended")
        for id in cutShort {
            #expect(
                finalExecutor[id] != "w0" && finalExecutor[id] != nil,
                "\(id), cut short in w0, was finished by \(finalExecutor[id] ?? "nobody")")
        }
        let executors = try await database.query("SELECT executor_id FROM dbos.durable_executors").rows.compactMap {
            $0.string(0)
        }
        #expect(!executors.contains("w0"), "the dead executor is still listed after the takeover")

        let runsByWorkflow = Dictionary(grouping: runs, by: \.workflow)
        let effectsByWorkflow = Dictionary(grouping: effects, by: \.workflow)
        var takenOverBy: [String: Int] = [:]
        for id in inputs.keys.sorted() {
            let attempt = (runsByWorkflow[id] ?? []).sorted { $0.start < $1.start }
            // At most two runs: one the kill cut short (in the victim), then the one that finished it, in the
            // executor recorded as its owner. The two never overlap in time.
            #expect((1...2).contains(attempt.count), "\(id) ran \(attempt.count) times: \(attempt.map(\.executor))")
            if let last = attempt.last {
                #expect(
                    last.executor == finalExecutor[id],
                    "\(id) finished in \(last.executor) but is owned by \(finalExecutor[id] ?? "nil")")
                #expect(last.end != nil)
            }
            for (earlier, later) in zip(attempt, attempt.dropFirst()) {
                #expect(
                    earlier.executor == "w0" && later.executor != "w0",
                    "\(id) ran in \(earlier.executor) and then \(later.executor)")
                #expect(
                    (earlier.end ?? killedAt) <= later.start,
                    "\(id) ran in \(earlier.executor) and \(later.executor) at once")
            }
            if attempt.count == 2, let rescuer = attempt.last?.executor { takenOverBy[rescuer, default: 0] += 1 }
            // The claim and each takeover count an attempt; a victim killed between its claim and the body's first
            // write leaves an attempt without a run.
            let recorded = attempts[id] ?? 0
            #expect(
                (1...2).contains(recorded) && recorded >= attempt.count,
                "\(id): recovery_attempts \(recorded) for \(attempt.count) runs")

            checkEffects(
                id, effectsByWorkflow[id] ?? [], scenario: scenario,
                ranInVictim: attempt.contains { $0.executor == "w0" })
        }

        // The queue's limits, from the run intervals (a run cut short by the kill counts until the kill; its
        // workflow kept its slot, PENDING, until a survivor finished it, so this undercounts, never overcounts).
        let intervals = runs.map { (executor: $0.executor, start: $0.start, end: $0.end ?? killedAt) }
        let overall = Self.mostAtOnce(intervals.map { ($0.start, $0.end) })
        #expect(
            overall <= scenario.concurrency,
            "\(overall) workflows ran at once; the queue allows \(scenario.concurrency)")
        #expect(overall >= 2, "workflows never ran in parallel; the intervals recorded look wrong")
        for executor in Set(intervals.map(\.executor)) {
            let most = Self.mostAtOnce(intervals.filter { $0.executor == executor }.map { ($0.start, $0.end) })
            // A takeover adds the dead executor's workflows on top of what the dispatcher started in this process.
            let allowed = scenario.workerConcurrency + (takenOverBy[executor] ?? 0)
            #expect(most <= allowed, "\(most) workflows ran at once in \(executor); at most \(allowed) allowed")
        }
    }

    /// Every step's effect ran; the transactional one exactly once; a plain one twice only in a workflow the victim
    /// was running, and only the step in flight at the kill: the victim's effects are steps 1…m, the rescuer's
    /// start at m (a repeat of the plain step cut between effect and checkpoint) or at m + 1, and run to the end.
    func checkEffects(_ id: String, _ effects: [Effect], scenario: Scenario, ranInVictim: Bool) {
        let all = Array(1...scenario.steps)
        let transactional = effects.filter { $0.kind == "tx" }
        #expect(
            transactional.map(\.step) == [scenario.transactionStep],
            "\(id): transactional effects \(transactional.map(\.step))")
        let victim = effects.filter { $0.executor == "w0" }.map(\.step)
        let rest = effects.filter { $0.executor != "w0" }
        #expect(
            Set(rest.map(\.executor)).count <= 1, "\(id): effects in several survivors \(Set(rest.map(\.executor)))")
        let others = rest.map(\.step)
        #expect(Set(victim + others) == Set(all), "\(id): effects of steps \(effects.map(\.step))")
        #expect(
            victim == victim.sorted() && others == others.sorted(), "\(id): effects out of order \(effects.map(\.step))"
        )
        guard let lastInVictim = victim.last, let firstElsewhere = others.first else {
            // One executor ran every effect (w0 may have finished all its steps and died before recording the end).
            #expect(effects.map(\.step) == all, "\(id): effects \(effects.map(\.step)), expected each step once")
            return
        }
        #expect(ranInVictim, "\(id): effects in w0 and elsewhere, but no run of it in w0")
        #expect(victim == Array(1...lastInVictim), "\(id): w0 ran steps \(victim)")
        #expect(others == Array(firstElsewhere...scenario.steps), "\(id): the rescuer ran steps \(others)")
        let repeated = firstElsewhere == lastInVictim
        #expect(repeated || firstElsewhere == lastInVictim + 1, "\(id): w0 ran \(victim), the rescuer \(others)")
        if repeated {
            #expect(lastInVictim != scenario.transactionStep, "\(id): the transactional step ran twice")
            let victimLast = effects.last { $0.executor == "w0" }?.order ?? .max
            let rescuerFirst = effects.first { $0.executor != "w0" }?.order ?? .min
            #expect(victimLast < rescuerFirst, "\(id): the repeat came before the original")
        }
    }

    // MARK: - An unknown workflow name

    @Test(
        "a workflow enqueued by an outside client under a name no process registered stays ENQUEUED, blocks nothing, and runs once a process knows the name"
    )
    func unknownName() async throws {
        let database = try await TestDatabase.fresh("qcrash_unknown")
        // One slot: if the stranger were claimed, counted, or kept the head of the queue, the others could not run.
        let queue = WorkflowQueue("strangers", concurrency: 1)
        let log = CapturedLog()
        let runtime = DurableRuntime(
            configuration: Self.configuration(url: database.url, executor: "knows-doubler"),
            logger: log.logger(level: .info))
        runtime.register(QueueCrashDoubler())
        runtime.register(queue: queue)
        try await runtime.launch()
        // Past the dispatcher's first look for unknown names (2 s after launch): the warning below must come from
        // a later look, as it does for a workflow an outside client enqueues at any time (this once waited a minute).
        try await Task.sleep(for: .seconds(3))

        // As DBOS's SQL-level client enqueues (no application version, priority 0): first in line.
        let stranger = try await database.value(
            "SELECT dbos.enqueue_workflow('no-such-workflow', 'strangers', ARRAY['21'::json], workflow_id => 'stranger')"
        )
        #expect(stranger == "stranger")
        var handles: [WorkflowHandle<Int>] = []
        for value in 1...3 {
            handles.append(try await runtime.enqueue(QueueCrashDoubler.self, value, queue: "strangers"))
        }
        let othersRan = await eventually(timeout: .seconds(30), every: .milliseconds(50)) {
            (try? await database.value(
                "SELECT count(*) FROM dbos.workflow_status WHERE queue_name = 'strangers' AND status = 'SUCCESS'"))
                == "3"
        }
        #expect(othersRan, "the workflows behind the stranger did not run")
        for (offset, handle) in handles.enumerated() where othersRan {
            #expect(try await handle.result() == (offset + 1) * 2)
        }

        // The dispatcher keeps polling (at most once a second) without claiming the stranger: no spin. A busy
        // loop would commit thousands of transactions in this window; polling, heartbeats and these probes a few dozen.
        let commits = "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        let before = Int(try await database.value(commits) ?? "") ?? 0
        try await Task.sleep(for: .seconds(3))
        let after = Int(try await database.value(commits) ?? "") ?? 0
        #expect(after - before < 300, "\(after - before) commits in 3 s of an idle queue holding one unknown workflow")

        let row = try #require(
            try await database.query(
                "SELECT status, executor_id, started_at_epoch_ms, recovery_attempts FROM dbos.workflow_status WHERE workflow_uuid = 'stranger'"
            ).first)
        #expect(row.string(0) == "ENQUEUED")
        #expect(row.string(1) == nil)
        #expect(row.string(2) == nil)
        #expect(row.int(3) == 0)
        // The dispatcher says why it leaves the stranger alone (this was once silent), naming it and its name.
        let warned = await eventually(timeout: .seconds(40), every: .milliseconds(50)) {
            log.all.contains {
                $0.contains("stranger") && $0.contains("no-such-workflow") && $0.contains("not registered")
            }
        }
        #expect(warned, "no log line names the unknown workflow")

        // Left for a process that knows the name: one that registers it picks it up.
        let knower = DurableRuntime(
            configuration: Self.configuration(url: database.url, executor: "knows-stranger"), logger: Self.quietLogger)
        knower.register(QueueCrashStranger())
        knower.register(queue: queue)
        try await knower.launch()
        let ran = await eventually(timeout: .seconds(30), every: .milliseconds(50)) {
            (try? await database.value("SELECT status FROM dbos.workflow_status WHERE workflow_uuid = 'stranger'"))
                == "SUCCESS"
        }
        #expect(ran, "the process that registers 'no-such-workflow' did not run it")
        if ran {
            #expect(try await knower.handle(for: "stranger", resultType: Int.self).result() == 22)
            #expect(
                try await database.value(
                    "SELECT executor_id FROM dbos.workflow_status WHERE workflow_uuid = 'stranger'") == "knows-stranger"
            )
        }
        await knower.shutdown()
        await runtime.shutdown()
    }

    // MARK: - Helpers

    static func configuration(url: String, executor: String, served: Set<String>? = nil) -> DurableConfiguration {
        DurableConfiguration(
            databaseURL: url, executorID: executor, applicationVersion: appVersion,
            // Few connections: the whole test process shares one server's max_connections with every other suite.
            maxConnections: 4, servedQueues: served,
            // Heartbeats inside the workers' takeover limit, so they never presume this process dead.
            heartbeatInterval: .milliseconds(500), takeoverAfter: nil
        )
    }

    static var quietLogger: Logger {
        var logger = Logger(label: "queue-crash-tests")
        logger.logLevel = .critical
        return logger
    }

    /// The database clock minus this machine's, in microseconds, from the quickest of five round trips, with
    /// that round trip as the error bound.
    static func databaseClockOffset(_ database: TestDatabase) async throws -> (offset: Int64, margin: Int64) {
        var best: (offset: Int64, margin: Int64)?
        for _ in 0..<5 {
            let sent = Date().timeIntervalSince1970
            let remote = try #require(
                try await database.query("SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint").first?
                    .int64(0))
            let received = Date().timeIntervalSince1970
            let trip = Int64((received - sent) * 1_000_000)
            let offset = remote - Int64((sent + received) / 2 * 1_000_000)
            if best == nil || trip < best!.margin { best = (offset, trip) }
        }
        return best!
    }

    /// From a worker's output: it has finished (DONE) two workflows, and another has run only steps 1–2.
    static func finishedAndEarly(_ lines: [String], steps: Int) -> Bool {
        var done: Set<String> = []
        var reached: [String: Int] = [:]
        for line in lines {
            let words = line.split(separator: " ")
            if words.first == "DONE", words.count == 2 { done.insert(String(words[1])) }
            if words.first == "STEP", words.count == 3, let step = Int(words[2]) {
                reached[String(words[1]), default: 0] = max(reached[String(words[1])] ?? 0, step)
            }
        }
        return done.count >= 2 && reached.contains { !done.contains($0.key) && $0.value <= min(2, steps - 3) }
    }

    /// The most intervals overlapping at one instant; an interval ending exactly when another starts does not overlap it.
    static func mostAtOnce(_ intervals: [(Int64, Int64)]) -> Int {
        var events: [(at: Int64, change: Int)] = []
        for (start, end) in intervals {
            events.append((start, 1))
            events.append((end, -1))
        }
        // At equal instants, ends first.
        events.sort { $0.at != $1.at ? $0.at < $1.at : $0.change < $1.change }
        var current = 0
        var most = 0
        for event in events {
            current += event.change
            most = max(most, current)
        }
        return most
    }
}
