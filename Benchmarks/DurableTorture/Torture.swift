import Durable
import EmbeddedPostgres
import Foundation
import LibPQ
import Logging

/// The controller side of the torture run.
struct Torture {
    let workflows: Int
    let steps: Int
    let workers: Int
    let seconds: Int
    let stepMilliseconds: Int
    /// When set, a killed worker comes back under a new executor ID, so its workflows are finished only by the
    /// takeover of live workers (silent this long), not by its own recovery.
    let takeoverMilliseconds: Int?

    func say(_ line: String) { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }

    func run() async throws {
        var embedded: EmbeddedPostgres?
        let url: String
        if let external = ProcessInfo.processInfo.environment["DATABASE_URL"], !external.isEmpty {
            url = external
        } else {
            embedded = try await EmbeddedPostgres.start()
            url = embedded!.url
        }
        say(
            "torture: \(workflows) workflows × \(steps) steps, \(workers) workers, \(seconds) s of chaos\(embedded == nil ? " (no Postgres restarts: DATABASE_URL)" : "")\(takeoverMilliseconds.map { ", killed workers replaced under new executor IDs (takeover after \($0) ms)" } ?? "")"
        )
        let admin = try await PGConnection.connect(
            PGConfiguration(connectionString: ConnectionString(url), usePreparedStatements: false))
        try await admin.execute(
            """
            DROP SCHEMA IF EXISTS durable_torture CASCADE; DROP SCHEMA IF EXISTS durable_torture_app CASCADE;
            CREATE SCHEMA durable_torture_app;
            CREATE TABLE durable_torture_app.tx_effects (workflow_id text NOT NULL, step int NOT NULL);
            CREATE TABLE durable_torture_app.plain_effects (workflow_id text NOT NULL, step int NOT NULL);
            """)

        // Enqueue everything from this process; the workers do the work.
        var logger = Logger(label: "torture")
        logger.logLevel = .critical
        let effects = ConnectionPool(
            configuration: PGConfiguration(connectionString: ConnectionString(url)), maxConnections: 2, logger: logger)
        // The producer only enqueues: if it served the queue too, what it claimed would wait for takeover after it stops.
        let producer = makeRuntime(url: url, executor: "torture-producer", effects: effects, serve: false)
        for index in 0..<workflows {
            _ = try await producer.enqueue(
                TortureWorkflow.self, TortureInput(steps: steps, stepMilliseconds: stepMilliseconds), queue: queue.name,
                options: EnqueueOptions(id: "t-\(index)"))
        }
        await producer.shutdown()

        let executable = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        var generations = Array(repeating: 0, count: workers)
        var processes: [ChildProcess] = try (0..<workers).map {
            try startWorker(executable, url: url, index: $0, generation: 0)
        }
        var kills = 0
        var restarts = 0
        var terminations = 0
        let chaosEnd = ContinuousClock.now.advanced(by: .seconds(seconds))
        while ContinuousClock.now < chaosEnd {
            try await Task.sleep(for: .milliseconds(Int.random(in: 300...1_500)))
            // Every run restarts Postgres at least once (when it is ours to restart), half-way through.
            let halfway = ContinuousClock.now >= chaosEnd.advanced(by: .seconds(-seconds / 2))
            switch restarts == 0 && halfway && embedded != nil ? 9 : Int.random(in: 0..<10) {
            case 0..<6:
                let victim = Int.random(in: 0..<workers)
                processes[victim].signal(SIGKILL)
                await processes[victim].exited()
                if takeoverMilliseconds != nil { generations[victim] += 1 }
                processes[victim] = try startWorker(
                    executable, url: url, index: victim, generation: generations[victim])
                kills += 1
            case 6..<8:
                _ = try? await admin.query(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name LIKE 'durable:torture-%' AND random() < 0.3"
                )
                terminations += 1
            default:
                if let embedded {
                    try await embedded.restart(immediate: true)
                    restarts += 1
                }
            }
        }
        let unfinished =
            try await admin.query("SELECT count(*) FROM durable_torture.workflow_status WHERE status <> 'SUCCESS'")
            .first?.int(0) ?? 0
        say(
            "chaos over: \(unfinished) workflows still unfinished; \(kills) worker SIGKILLs, \(restarts) Postgres restarts, \(terminations) rounds of pg_terminate_backend; waiting for them"
        )

        // Settle: everything must finish within a bound, or something hung.
        let checker = try await PGConnection.connect(
            PGConfiguration(connectionString: ConnectionString(url), usePreparedStatements: false))
        let settleEnd = ContinuousClock.now.advanced(by: .seconds(180))
        var finished = 0
        while ContinuousClock.now < settleEnd {
            finished =
                try await checker.query("SELECT count(*) FROM durable_torture.workflow_status WHERE status = 'SUCCESS'")
                .first?.int(0) ?? 0
            if finished == workflows { break }
            try await Task.sleep(for: .milliseconds(500))
        }
        for process in processes {
            process.signal(SIGKILL)
            await process.exited()
        }

        let resumed = try await checker.query(
            "SELECT count(*) FROM durable_torture.workflow_status WHERE workflow_uuid LIKE 't-%' AND recovery_attempts > 1"
        )
        say("\(resumed.first?.int(0) ?? 0) workflows were dispatched or resumed more than once (after an interruption)")

        var passed = 0
        var failed = 0
        func check(_ ok: Bool, _ what: String) {
            if ok { passed += 1 } else { failed += 1 }
            say("\(ok ? "PASS" : "FAIL") \(what)")
        }
        check(finished == workflows, "every workflow finished (\(finished)/\(workflows) SUCCESS, none hung)")
        if finished < workflows {
            // Where the stragglers are, for whoever reads a failed run: state, owner, attempts, checkpoints.
            let stragglers = try await checker.query(
                """
                SELECT ws.workflow_uuid, ws.status, coalesce(ws.executor_id, '-'), ws.recovery_attempts,
                       coalesce(ws.queue_name, '-'), (SELECT count(*) FROM durable_torture.operation_outputs o WHERE o.workflow_uuid = ws.workflow_uuid),
                       (extract(epoch FROM now()) * 1000)::bigint - ws.updated_at
                FROM durable_torture.workflow_status ws WHERE ws.status <> 'SUCCESS' ORDER BY ws.workflow_uuid LIMIT 20
                """)
            for row in stragglers.rows {
                say(
                    "  unfinished \(row.string(0) ?? "?"): \(row.string(1) ?? "?") executor=\(row.string(2) ?? "?") attempts=\(row.int(3) ?? -1) queue=\(row.string(4) ?? "?") steps=\(row.int(5) ?? -1) updated \(row.int64(6) ?? -1) ms ago"
                )
            }
            let executors = try await checker.query(
                "SELECT executor_id, count(*) FILTER (WHERE status = 'PENDING') FROM durable_torture.workflow_status GROUP BY 1 ORDER BY 1"
            )
            say(
                "  pending by executor: "
                    + executors.rows.map { "\($0.string(0) ?? "-")=\($0.int(1) ?? 0)" }.joined(separator: " "))
        }
        let txSteps = (1...steps).filter { $0 % 2 == 1 }.count
        let plainSteps = steps - txSteps
        let txRows = try await checker.query(
            "SELECT count(*), count(DISTINCT (workflow_id, step)) FROM durable_torture_app.tx_effects")
        check(
            txRows.first?.int(1) == workflows * txSteps,
            "every transactional effect happened (\(txRows.first?.int(1) ?? 0)/\(workflows * txSteps))")
        check(
            txRows.first?.int(0) == txRows.first?.int(1),
            "no transactional effect happened twice (\(txRows.first?.int(0) ?? 0) rows)")
        let plainRows = try await checker.query(
            "SELECT count(*), count(DISTINCT (workflow_id, step)) FROM durable_torture_app.plain_effects")
        let plainTotal = plainRows.first?.int(0) ?? 0
        check(
            plainRows.first?.int(1) == workflows * plainSteps,
            "every plain effect happened at least once (\(plainRows.first?.int(1) ?? 0)/\(workflows * plainSteps))")
        let repeats = plainTotal - workflows * plainSteps
        // A plain step repeats only when its run was cut between the effect and the checkpoint, which only a kill,
        // a restart or a terminated connection can do; each interrupts at most one step per workflow in flight.
        let interruptions = (kills + restarts + terminations) * workers * queue.workerConcurrency!
        check(
            repeats >= 0 && repeats <= interruptions,
            "plain-step repeats (\(repeats)) only where an interruption fell between effect and checkpoint (at most \(interruptions))"
        )
        let recorded = try await checker.query(
            "SELECT count(*) FROM durable_torture.operation_outputs WHERE workflow_uuid LIKE 't-%'")
        check(
            recorded.first?.int(0) == workflows * steps,
            "every step checkpointed exactly once (\(recorded.first?.int(0) ?? 0)/\(workflows * steps))")
        say("\(passed) passed, \(failed) failed")
        await checker.close()
        await admin.close()
        await embedded?.stop()
        if failed > 0 { exit(1) }
    }

    /// A worker process (ChildProcess rather than Foundation's Process, whose exit detection can miss a child).
    private func startWorker(_ executable: String, url: String, index: Int, generation: Int) throws -> ChildProcess {
        // TORTURE_LOG_DIR keeps each worker's log (its level from TORTURE_LOG_LEVEL), for looking into a failure.
        var log = ChildProcess.Output.null
        if let directory = ProcessInfo.processInfo.environment["TORTURE_LOG_DIR"] {
            log = .file("\(directory)/worker-\(index)-\(UUID().uuidString.prefix(8)).log")
        }
        let executor = generation == 0 ? "torture-\(index)" : "torture-\(index)-\(generation)"
        let takeover = takeoverMilliseconds.map { [String($0)] } ?? []
        return try ChildProcess(
            executable, ["__worker", url, executor] + takeover, standardOutput: .null, standardError: log)
    }
}
