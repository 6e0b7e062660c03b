import Durable
import EmbeddedPostgres
import Foundation
import LibPQ
import Logging
import Synchronization
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Shared helpers of the schema-migration and DBOS-interoperability suites (`Migration*Tests.swift`,
/// `DBOSInteropTests.swift`): the catalog snapshot, runtimes on a schema, child processes, the DBOS virtualenv.
enum MigrationTestSupport {
    // MARK: - Paths

    /// `Tests/DurableTests/Fixtures`, found from the package root (see ``SourceTree``), not a bundle: the
    /// fixtures are compared with the files themselves.
    static let fixtures = SourceTree.durableFixtures
    /// `Migrations/`.
    static let migrationsDirectory = SourceTree.migrations

    static func fixtureText(_ name: String) throws -> String {
        try String(contentsOf: fixtures.appendingPathComponent(name), encoding: .utf8)
    }

    /// The catalog DBOS 3.4.0's own `dbos migrate` leaves in schema `dbos`, one fact per line.
    static func dbosCatalogFixture() throws -> [String] {
        try fixtureText("dbos-3.4.0-catalog.txt").split(separator: "\n", omittingEmptySubsequences: true).map(
            String.init)
    }

    /// What migration 0002 and later add beside DBOS's tables, in the catalog query's format and order. Every
    /// fact about a table named `durable_*` is ours; nothing else may differ from the DBOS fixture.
    static let durableOwnFacts: [String] = [
        "column durable_executor_instances 001 instance_id text NOT NULL",
        "column durable_executor_instances 002 executor_id text NOT NULL",
        "column durable_executor_instances 003 application_version text NOT NULL",
        "column durable_executor_instances 004 host text NOT NULL",
        "column durable_executor_instances 005 process_id integer NOT NULL",
        "column durable_executor_instances 006 process_started text NULL",
        "column durable_executor_instances 007 heartbeat_interval_ms bigint NOT NULL",
        "column durable_executor_instances 008 started_at bigint NOT NULL DEFAULT ((EXTRACT(epoch FROM now()) * 1000.0))::bigint",
        "column durable_executor_instances 009 last_heartbeat bigint NOT NULL DEFAULT ((EXTRACT(epoch FROM now()) * 1000.0))::bigint",
        "column durable_executors 001 executor_id text NOT NULL",
        "column durable_executors 002 application_version text NOT NULL",
        "column durable_executors 003 started_at bigint NOT NULL DEFAULT ((EXTRACT(epoch FROM now()) * 1000.0))::bigint",
        "column durable_executors 004 last_heartbeat bigint NOT NULL DEFAULT ((EXTRACT(epoch FROM now()) * 1000.0))::bigint",
        "column durable_migrations 001 version integer NOT NULL",
        "column durable_migrations 002 applied_at bigint NOT NULL DEFAULT ((EXTRACT(epoch FROM now()) * 1000.0))::bigint",
        "constraint durable_executor_instances durable_executor_instances_pkey p PRIMARY KEY (instance_id)",
        "constraint durable_executors durable_executors_pkey p PRIMARY KEY (executor_id)",
        "constraint durable_migrations durable_migrations_pkey p PRIMARY KEY (version)",
        "index durable_executor_instances durable_executor_instances_executor CREATE INDEX durable_executor_instances_executor ON SCHEMA.durable_executor_instances USING btree (executor_id)",
        "index durable_executor_instances durable_executor_instances_pkey CREATE UNIQUE INDEX durable_executor_instances_pkey ON SCHEMA.durable_executor_instances USING btree (instance_id)",
        "index durable_executors durable_executors_pkey CREATE UNIQUE INDEX durable_executors_pkey ON SCHEMA.durable_executors USING btree (executor_id)",
        "index durable_migrations durable_migrations_pkey CREATE UNIQUE INDEX durable_migrations_pkey ON SCHEMA.durable_migrations USING btree (version)",
        "relation durable_executor_instances kind=r persistence=p",
        "relation durable_executors kind=r persistence=p",
        "relation durable_migrations kind=r persistence=p",
    ]

    /// Whether a catalog fact is about one of our own (`durable_*`) tables: its second word is the table.
    static func isDurableOwnFact(_ fact: String) -> Bool {
        let words = fact.split(separator: " ", maxSplits: 2)
        return words.count > 1 && words[1].hasPrefix("durable_")
    }

    // MARK: - Databases and runtimes

    /// The normalised catalog of `schema` (the fixture query, `$1` = the plain schema name).
    static func catalog(_ url: String, schema: String = "dbos") async throws -> [String] {
        let sql = try fixtureText("catalog-query.sql")
        return try await TestDatabase(url: url).query(sql, [schema]).rows.map { $0.string(0) ?? "<NULL>" }
    }

    /// The rows of `<schema>.dbos_migrations`.
    static func dbosVersions(_ url: String, schema: String = "dbos") async throws -> [Int64] {
        try await TestDatabase(url: url).query(
            "SELECT version FROM \(SQLIdentifier.quote(schema)).dbos_migrations ORDER BY version"
        ).rows.compactMap { $0.int64(0) }
    }

    /// The rows of `<schema>.durable_migrations`.
    static func durableVersions(_ url: String, schema: String = "dbos") async throws -> [Int] {
        try await TestDatabase(url: url).query(
            "SELECT version FROM \(SQLIdentifier.quote(schema)).durable_migrations ORDER BY version"
        ).rows.compactMap { $0.int(0) }
    }

    static func schemaExists(_ url: String, _ schema: String) async throws -> Bool {
        try await TestDatabase(url: url).query(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", [schema]
        ).first?.bool(0) ?? false
    }

    static func configuration(
        url: String, schema: String = "dbos", executorID: String = "migration-tests", autoMigrate: Bool = true
    ) -> DurableConfiguration {
        DurableConfiguration(
            databaseURL: url, schema: schema, executorID: executorID, applicationVersion: "migration-tests",
            // Generous: at the start of a run every suite connects at once, and one connect can take seconds.
            maxConnections: 4, connectTimeout: .seconds(30), reconnectTimeout: .seconds(60), autoMigrate: autoMigrate
        )
    }

    static func makeRuntime(_ configuration: DurableConfiguration, register: (DurableRuntime) -> Void = { _ in })
        -> DurableRuntime
    {
        var logger = Logger(label: "migration-tests")
        logger.logLevel = .critical
        let runtime = DurableRuntime(configuration: configuration, logger: logger)
        register(runtime)
        return runtime
    }

    /// Runs `body` and shuts the runtime down afterwards, whether or not `body` threw.
    static func using<Result>(_ runtime: DurableRuntime, _ body: (DurableRuntime) async throws -> Result) async throws
        -> Result
    {
        do {
            let result = try await body(runtime)
            await runtime.shutdown()
            return result
        } catch {
            await runtime.shutdown()
            throw error
        }
    }

    /// Launches a runtime and expects it to fail with a ``DurableError``; returns that error.
    static func launchFailure(_ runtime: DurableRuntime, sourceLocation: SourceLocation = #_sourceLocation) async
        -> DurableError?
    {
        do {
            try await runtime.launch()
            await runtime.shutdown()
            Issue.record("launch succeeded but was expected to fail", sourceLocation: sourceLocation)
            return nil
        } catch let error as DurableError {
            await runtime.shutdown()
            return error
        } catch {
            await runtime.shutdown()
            Issue.record("launch failed with a non-DurableError: \(error)", sourceLocation: sourceLocation)
            return nil
        }
    }

    /// What a launch that changes nothing leaves as it was: the oid of every relation and function in the schema
    /// (a dropped and re-created object gets a new one) and the xmin of every version row (a rewritten row gets
    /// a new one).
    static func fingerprint(_ url: String, schema: String = "dbos") async throws -> [String] {
        let quoted = SQLIdentifier.quote(schema)
        var lines = try await TestDatabase(url: url).query(
            """
            SELECT 'relation ' || c.relname || ' ' || c.oid FROM pg_class c WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = $1)
            UNION ALL
            SELECT 'function ' || p.proname || ' ' || p.oid FROM pg_proc p WHERE p.pronamespace = (SELECT oid FROM pg_namespace WHERE nspname = $1)
            ORDER BY 1
            """, [schema]
        ).rows.compactMap { $0.string(0) }
        lines += try await TestDatabase(url: url).query(
            "SELECT 'dbos_migrations ' || version || ' xmin ' || xmin FROM \(quoted).dbos_migrations ORDER BY version"
        ).rows.compactMap { $0.string(0) }
        if try await TestDatabase(url: url).query(
            "SELECT to_regclass($1) IS NOT NULL", [quoted + ".durable_migrations"]
        ).first?.bool(0) == true {
            lines += try await TestDatabase(url: url).query(
                "SELECT 'durable_migrations ' || version || ' xmin ' || xmin FROM \(quoted).durable_migrations ORDER BY version"
            ).rows.compactMap { $0.string(0) }
        }
        return lines
    }

    // MARK: - Comparing line lists

    /// A readable diff: `-` lines the expectation has and the actual lacks, `+` lines only the actual has.
    static func diff(expected: [String], actual: [String], limit: Int = 80) -> String {
        let changes = actual.difference(from: expected)
        var lines: [(offset: Int, text: String)] = []
        for change in changes {
            switch change {
            case .remove(let offset, let element, _): lines.append((offset, "- " + element))
            case .insert(let offset, let element, _): lines.append((offset, "+ " + element))
            }
        }
        lines.sort { $0.offset < $1.offset }
        var text = "\(expected.count) expected lines, \(actual.count) actual; - only expected, + only actual:\n"
        text += lines.prefix(limit).map(\.text).joined(separator: "\n")
        if lines.count > limit { text += "\n… and \(lines.count - limit) more differences" }
        return text
    }

    /// Expects two line lists to be equal, showing a diff when they are not.
    static func expectSameLines(
        _ actual: [String], _ expected: [String], _ what: String, sourceLocation: SourceLocation = #_sourceLocation
    ) {
        if actual != expected {
            Issue.record(
                "\(what) differs.\n\(diff(expected: expected, actual: actual))", sourceLocation: sourceLocation)
        }
    }

    /// Expects the catalog of `schema` to be DBOS 3.4.0's plus, when `withOwnTables`, exactly our own tables.
    static func expectDBOSCatalog(
        _ url: String, schema: String = "dbos", withOwnTables: Bool = true,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        let catalog = try await catalog(url, schema: schema)
        try expectSameLines(
            catalog.filter { !isDurableOwnFact($0) }, dbosCatalogFixture(),
            "the DBOS part of the catalog of schema \(schema)", sourceLocation: sourceLocation)
        expectSameLines(
            catalog.filter(isDurableOwnFact), withOwnTables ? durableOwnFacts : [],
            "the durable_* part of the catalog of schema \(schema)", sourceLocation: sourceLocation)
    }

    // MARK: - Child processes

    /// The `DurableTestWorker` executable, built beside the test bundle.
    static var workerExecutable: String { BuiltExecutable.path("DurableTestWorker") }

    struct ProcessOutput: Sendable, CustomStringConvertible {
        var status: Int32
        var stdout: String
        var stderr: String
        var timedOut: Bool

        var stdoutLines: [String] { stdout.split(separator: "\n", omittingEmptySubsequences: true).map(String.init) }

        var description: String {
            "exit \(status)\(timedOut ? " (killed after the timeout)" : "")\n--- stdout:\n\(stdout.suffix(4000))\n--- stderr:\n\(stderr.suffix(4000))"
        }
    }

    struct Command: Sendable {
        var executable: String
        var arguments: [String]
        var environment: [String: String]? = nil
    }

    /// Runs one program to completion and collects its output.
    static func run(
        _ executable: String, _ arguments: [String], environment: [String: String]? = nil,
        timeout: Duration = .seconds(120)
    ) async throws -> ProcessOutput {
        try await runTogether(
            [Command(executable: executable, arguments: arguments, environment: environment)], timeout: timeout)[0]
    }

    /// Starts every command back to back (so they run at the same time), then collects each one's output.
    /// Each is killed if still running after `timeout`.
    static func runTogether(_ commands: [Command], timeout: Duration = .seconds(120)) async throws -> [ProcessOutput] {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<[ProcessOutput], any Error>) in
            DispatchQueue.global().async {
                do {
                    continuation.resume(returning: try runBlocking(commands, timeout: timeout))
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
    }

    private final class Collected: Sendable {
        let data = Mutex(Data())
    }

    /// Runs on a Dispatch thread (never the cooperative pool): it blocks in reads and waits. Children are
    /// ChildProcess, not Foundation's Process, whose exit detection can miss a child (see ChildProcess).
    private static func runBlocking(_ commands: [Command], timeout: Duration) throws -> [ProcessOutput] {
        let group = DispatchGroup()
        var started: [(process: ChildProcess, stdout: Collected, stderr: Collected)] = []
        let directory = FileManager.default.temporaryDirectory.path
        for command in commands {
            let process: ChildProcess
            do {
                let environment = command.environment.map {
                    ProcessInfo.processInfo.environment.merging($0) { _, new in new }
                }
                process = try ChildProcess(
                    command.executable, command.arguments, environment: environment, directory: directory)
            } catch {
                for earlier in started { earlier.process.signal(SIGKILL) }
                throw error
            }
            let stdout = Collected()
            let stderr = Collected()
            for (handle, sink) in [(process.standardOutput!, stdout), (process.standardError!, stderr)] {
                group.enter()
                DispatchQueue.global().async {
                    let bytes = PipeReading.readToEnd(handle)
                    sink.data.withLock { $0 = bytes }
                    group.leave()
                }
            }
            started.append((process, stdout, stderr))
        }
        let deadline = ContinuousClock.now.advanced(by: timeout)
        var outputs: [ProcessOutput] = []
        for entry in started {
            var ended = entry.process.waitUntilExit(timeout: max(.zero, ContinuousClock.now.duration(to: deadline)))
            let timedOut = ended == nil
            if timedOut {
                entry.process.signal(SIGKILL)
                ended = entry.process.waitUntilExit()
            }
            outputs.append(ProcessOutput(status: ended?.status ?? -1, stdout: "", stderr: "", timedOut: timedOut))
        }
        // The pipes end with the children (they keep no descriptor of ours); bounded all the same, in case a
        // grandchild outlives its parent holding one.
        _ = group.wait(timeout: .now() + 10)
        for index in outputs.indices {
            outputs[index].stdout = String(decoding: started[index].stdout.data.withLock { $0 }, as: UTF8.self)
            outputs[index].stderr = String(decoding: started[index].stderr.data.withLock { $0 }, as: UTF8.self)
        }
        return outputs
    }

    // MARK: - DBOS Python 3.4.0

    /// The virtualenv holding dbos 3.4.0: `DURABLE_DBOS_VENV`, else the git-ignored `.venv-dbos`; nil when
    /// neither has a `bin/dbos`, and the DBOS tests are then skipped.
    static let dbosVenv: String? = {
        var candidates: [String] = []
        if let named = ProcessInfo.processInfo.environment["DURABLE_DBOS_VENV"], !named.isEmpty {
            candidates.append(named)
        }
        candidates.append(SourceTree.root.appendingPathComponent(".venv-dbos").path)
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0 + "/bin/dbos") }
    }()

    static var hasDBOS: Bool { dbosVenv != nil }

    /// Runs the `dbos` CLI of the virtualenv; expects it to exit 0.
    @discardableResult
    static func dbosCLI(_ arguments: [String], sourceLocation: SourceLocation = #_sourceLocation) async throws
        -> ProcessOutput
    {
        let venv = try #require(dbosVenv, sourceLocation: sourceLocation)
        let output = try await run(
            venv + "/bin/dbos", arguments, environment: ["NO_COLOR": "1", "PYTHONUNBUFFERED": "1"])
        #expect(
            output.status == 0, "dbos \(arguments.joined(separator: " ")) failed: \(output)",
            sourceLocation: sourceLocation)
        return output
    }

    /// Runs a Python script of the fixtures with the virtualenv's interpreter.
    static func python(_ script: String, _ arguments: [String]) async throws -> ProcessOutput {
        let venv = try #require(dbosVenv)
        return try await run(
            venv + "/bin/python", [fixtures.appendingPathComponent(script).path] + arguments,
            environment: ["PYTHONUNBUFFERED": "1"])
    }

    /// Parses a program's stdout as JSON, recording an issue (with the output) when it is not JSON.
    static func parseJSON(_ output: ProcessOutput, sourceLocation: SourceLocation = #_sourceLocation) throws -> Any {
        do {
            return try JSONSerialization.jsonObject(with: Data(output.stdout.utf8), options: [.fragmentsAllowed])
        } catch {
            Issue.record("stdout is not JSON: \(error)\n\(output)", sourceLocation: sourceLocation)
            throw error
        }
    }
}

/// A two-step workflow the migration suites run to show a runtime really works on a schema.
struct MigrationProbeWorkflow: Workflow {
    static let name = "migration-probe"

    func run(_ ctx: WorkflowContext, _ input: Int) async throws -> Int {
        let doubled = try await ctx.step("double") { input * 2 }
        return try await ctx.step("add-one") { doubled + 1 }
    }

    /// Registers the probe, runs it once under `id` and returns its result (`2 * input + 1`).
    static func run(on runtime: DurableRuntime, id: String, input: Int = 20) async throws -> Int {
        try await runtime.start(MigrationProbeWorkflow.self, input, id: id).result()
    }
}
