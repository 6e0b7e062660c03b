import Foundation
import LibPQ
import Synchronization
import TestSupport
import Testing

@testable import Durable

/// First launches racing on an empty database: the advisory lock makes one migrate and the others find the
/// schema ready, whether they are runtimes in one process or separate processes.
@Suite("Migration: concurrent first launches", .serialized)
struct MigrationConcurrencyTests {
    typealias Support = MigrationTestSupport

    @Test(
        "runtimes in one process, each with its own pool, launching together on an empty database all succeed",
        arguments: [2, 6])
    func runtimesInOneProcess(count: Int) async throws {
        let url = try await TestDatabase.fresh("mig_race_runtimes").url
        let runtimes = (0..<count).map { index in
            Support.makeRuntime(Support.configuration(url: url, executorID: "racer-\(index)")) {
                $0.register(MigrationProbeWorkflow())
            }
        }
        let failures = await withTaskGroup(of: (Int, String?).self) { group in
            for (index, runtime) in runtimes.enumerated() {
                group.addTask {
                    do {
                        try await runtime.launch()
                        return (index, nil)
                    } catch {
                        return (index, "\(error)")
                    }
                }
            }
            var failures: [String] = []
            for await (index, failure) in group {
                if let failure { failures.append("runtime \(index): \(failure)") }
            }
            return failures
        }
        #expect(failures.isEmpty, "\(failures.joined(separator: "\n"))")
        if failures.isEmpty {
            for (index, runtime) in runtimes.enumerated() {
                #expect(
                    try await MigrationProbeWorkflow.run(on: runtime, id: "racer-\(index)", input: index) == 2 * index
                        + 1)
            }
        }
        for runtime in runtimes { await runtime.shutdown() }
        try await Support.expectDBOSCatalog(url)
        #expect(try await Support.dbosVersions(url) == [125])
        #expect(try await Support.durableVersions(url) == [2, 3])
    }

    @Test(
        "two DurableTestWorker processes started together on an empty database both migrate-or-wait and finish",
        arguments: 1...3)
    func twoProcesses(round: Int) async throws {
        let url = try await TestDatabase.fresh("mig_race_processes").url
        // The worker's steps write to <schema>_ledger.ledger; that is the test's table, not the system schema.
        try await TestDatabase(url: url).execute(
            """
            CREATE SCHEMA "dbos_ledger";
            CREATE TABLE "dbos_ledger".ledger (workflow_id text, step int);
            """)
        let worker = Support.workerExecutable
        try #require(FileManager.default.isExecutableFile(atPath: worker), "DurableTestWorker not built at \(worker)")
        let names = ["a", "b"]
        let outputs = try await Support.runTogether(
            names.map { name in
                Support.Command(
                    executable: worker,
                    arguments: [
                        "--url", url, "--executor", "race-\(round)-\(name)", "--workflow", "race-\(round)-\(name)",
                        "--start", "--steps", "1",
                    ])
            }, timeout: .seconds(90))
        for (name, output) in zip(names, outputs) {
            #expect(output.status == 0 && output.stdoutLines.contains("RESULT 1"), "worker \(name): \(output)")
        }
        try await Support.expectDBOSCatalog(url)
        #expect(try await Support.dbosVersions(url) == [125])
        #expect(try await Support.durableVersions(url) == [2, 3])
        let finished = try await TestDatabase(url: url).query(
            "SELECT workflow_uuid, status FROM dbos.workflow_status ORDER BY 1")
        #expect(
            finished.rows.map { "\($0.string(0) ?? "") \($0.string(1) ?? "")" }
                == names.map { "race-\(round)-\($0) SUCCESS" })
        let ledger = try await TestDatabase(url: url).query(
            "SELECT workflow_id, step FROM dbos_ledger.ledger ORDER BY 1")
        #expect(
            ledger.rows.map { "\($0.string(0) ?? "") \($0.string(1) ?? "")" } == names.map { "race-\(round)-\($0) 1" })
    }

    /// Where another process is when our runtime starts, while it holds the migration lock: ours builds the
    /// whole schema in one transaction; DBOS commits its schema and empty version table first, then each
    /// migration in a transaction of its own, some of them building indexes CONCURRENTLY.
    enum MigrationInProgress: String, CaseIterable, CustomTestStringConvertible, Sendable {
        case nothingCommittedYet, wholeSchemaUncommitted, emptyVersionTable, intermediateVersion,
            buildingIndexConcurrently
        var testDescription: String { rawValue }
    }

    @Test(
        "a runtime launching while another process holds the migration lock waits for it, then uses its schema",
        arguments: MigrationInProgress.allCases)
    func waitsForMigrationInProgress(_ stage: MigrationInProgress) async throws {
        let url = try await TestDatabase.fresh("mig_wait_lock").url
        let base = try #require(SchemaMigrator.embedded.first { $0.number == 1 }).sql(forSchema: "dbos")
        let connect = { try await PGConnection.connect(PGConfiguration.forTests(url)) }
        // DBOS holds the lock on one connection and migrates on others.
        let holder = try await connect()
        let migrator = try await connect()
        let executorID = "waiting-launch"
        let runtime = Support.makeRuntime(Support.configuration(url: url, executorID: executorID)) {
            $0.register(MigrationProbeWorkflow())
        }
        let finished = LaunchFinished()
        var launch: Task<Void, any Error>?
        do {
            try await holder.query("SELECT pg_advisory_lock($1)", [SchemaMigrator.advisoryLockKey])
            switch stage {
            case .nothingCommittedYet:
                break
            case .wholeSchemaUncommitted:
                try await holder.execute(
                    "BEGIN; CREATE SCHEMA dbos; \(base); INSERT INTO dbos.dbos_migrations VALUES (125)")
            case .emptyVersionTable:
                try await migrator.execute(
                    "CREATE SCHEMA dbos; CREATE TABLE dbos.dbos_migrations (version bigint NOT NULL PRIMARY KEY)")
            case .intermediateVersion, .buildingIndexConcurrently:
                try await migrator.execute("CREATE SCHEMA dbos; \(base); INSERT INTO dbos.dbos_migrations VALUES (37)")
            }
            // Launch now, and see it try for the lock (rather than judge the half-built schema).
            launch = Task {
                defer { finished.flag.withLock { $0 = true } }
                try await runtime.launch()
            }
            let tried = try await waitForLockAttempt(
                url, applicationName: "durable:\(executorID)", while: { !finished.flag.withLock { $0 } })
            #expect(tried, "the launch never tried for the migration lock")
            #expect(!finished.flag.withLock { $0 }, "the launch ended while another process held the migration lock")
            switch stage {
            case .nothingCommittedYet:
                try await migrator.execute(
                    "BEGIN; CREATE SCHEMA dbos; \(base); INSERT INTO dbos.dbos_migrations VALUES (125); COMMIT")
            case .wholeSchemaUncommitted:
                try await holder.execute("COMMIT")
            case .emptyVersionTable:
                try await migrator.execute(
                    "BEGIN; DROP TABLE dbos.dbos_migrations; \(base); INSERT INTO dbos.dbos_migrations VALUES (125); COMMIT"
                )
            case .intermediateVersion:
                try await migrator.execute("UPDATE dbos.dbos_migrations SET version = 125")
            case .buildingIndexConcurrently:
                // CREATE INDEX CONCURRENTLY waits for every transaction holding a snapshot. A launch waiting for the
                // lock inside a transaction would make this wait forever (a deadlock PostgreSQL cannot detect).
                try await migrator.execute("SET statement_timeout = '20s'")
                try await migrator.execute(
                    "CREATE INDEX CONCURRENTLY durable_test_online ON dbos.workflow_status (name)")
                try await migrator.execute("DROP INDEX dbos.durable_test_online; RESET statement_timeout")
                try await migrator.execute("UPDATE dbos.dbos_migrations SET version = 125")
            }
            try await holder.query("SELECT pg_advisory_unlock($1)", [SchemaMigrator.advisoryLockKey])
            await holder.close()
            await migrator.close()
        } catch {
            await holder.close()
            await migrator.close()
            launch?.cancel()
            await runtime.shutdown()
            throw error
        }
        try await Support.using(runtime) { runtime in
            try await launch?.value
            #expect(try await MigrationProbeWorkflow.run(on: runtime, id: "after-wait") == 41)
        }
        try await Support.expectDBOSCatalog(url)
        #expect(try await Support.dbosVersions(url) == [125])
        #expect(try await Support.durableVersions(url) == [2, 3])
    }
}

private final class LaunchFinished: Sendable {
    let flag = Mutex(false)
}

/// Polls until the launching runtime (its connections carry `applicationName`) has got as far as trying for the
/// migration advisory lock; false if `stillWorth` turns false (the launch ended) or 60 s pass first. Each
/// attempt is a short transaction, so its connection shows BEGIN, the try, or COMMIT as its last query; none of
/// these comes earlier in a launch, whose first look at the schema runs without a transaction.
private func waitForLockAttempt(_ url: String, applicationName: String, while stillWorth: () -> Bool) async throws
    -> Bool
{
    let deadline = ContinuousClock.now.advanced(by: .seconds(60))
    while ContinuousClock.now < deadline, stillWorth() {
        let attempts = try await TestDatabase(url: url).query(
            """
            SELECT count(*) FROM pg_stat_activity
            WHERE datname = current_database() AND application_name = $1
              AND (query IN ('BEGIN', 'COMMIT') OR query LIKE '%pg_try_advisory_xact_lock%'
                   OR (query LIKE '%pg_advisory_xact_lock%' AND wait_event_type = 'Lock'))
            """, [applicationName])
        if attempts.first?.int(0) ?? 0 > 0 { return true }
        try await Task.sleep(for: .milliseconds(10))
    }
    return false
}
