import Durable
import EmbeddedPostgres
import Foundation
import LibPQ
import Logging
import Testing

/// Files beside this test: the catalog query and the catalog of a database migrated by `dbos migrate` 3.4.0.
enum SchemaFixtures {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func text(_ name: String) throws -> String {
        try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)
    }

    /// The catalog lines of `schema`, minus our own tables (`durable_*`, from migration 0002 on), which DBOS's
    /// schema does not have.
    static func catalog(url: String, schema: String) async throws -> [String] {
        let connection = try await PostgresConnection.connect(PostgresConfiguration(connectionString: ConnectionString(url), usePreparedStatements: false))
        defer { Task { await connection.close() } }
        let query = try text("catalog-query.sql")
        let rows = try await connection.query(query, [schema])
        return rows.rows.map { row in row.values.map { $0 ?? "" }.joined(separator: " ") }
            .filter { !$0.contains("durable_") }
    }

    static var reference: [String] {
        get throws { try text("dbos-3.4.0-catalog.txt").split(separator: "\n").map(String.init) }
    }
}

func quietRuntime(url: String, schema: String = "dbos", executor: String = "schema-tests", autoMigrate: Bool = true) -> DurableRuntime {
    var logger = Logger(label: "schema-tests")
    logger.logLevel = .critical
    return DurableRuntime(configuration: DurableConfiguration(databaseURL: url, schema: schema, executorID: executor, autoMigrate: autoMigrate), logger: logger)
}

@Suite("Schema migrations")
struct SchemaTests {
    @Test("a fresh database gets exactly the DBOS 3.4.0 schema, under any schema name", arguments: ["dbos", "select", "My \"Odd\" Schema", "schéma_ünïcode"])
    func freshSchemaMatchesReference(schema: String) async throws {
        let url = try await SharedDatabaseURL.fresh("schema_fresh")
        let runtime = quietRuntime(url: url, schema: schema)
        try await runtime.launch()
        await runtime.shutdown()
        let ours = try await SchemaFixtures.catalog(url: url, schema: schema)
        let reference = try SchemaFixtures.reference
        let missing = Set(reference).subtracting(ours).sorted()
        let extra = Set(ours).subtracting(reference).sorted()
        #expect(missing.isEmpty, "missing from ours: \(missing)")
        #expect(extra.isEmpty, "not in DBOS 3.4.0: \(extra)")
        #expect(ours.count == reference.count)
    }

    @Test("launching again changes nothing; the version row is DBOS's 125")
    func launchTwice() async throws {
        let url = try await SharedDatabaseURL.fresh("schema_twice")
        for _ in 0..<2 {
            let runtime = quietRuntime(url: url)
            try await runtime.launch()
            await runtime.shutdown()
        }
        let h = MessagingHarness(url: url, runtime: quietRuntime(url: url))
        let versions = try await h.query("SELECT version FROM dbos.dbos_migrations")
        #expect(versions.rows.map { $0.int(0) } == [125])
        let ours = try await h.query("SELECT version FROM dbos.durable_migrations ORDER BY 1")
        #expect(ours.rows.map { $0.int(0) } == [2])
    }

    @Test("two runtimes launching at once on an empty database both succeed")
    func concurrentLaunch() async throws {
        let url = try await SharedDatabaseURL.fresh("schema_concurrent")
        let runtimes = (0..<4).map { quietRuntime(url: url, executor: "c\($0)") }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for runtime in runtimes { group.addTask { try await runtime.launch() } }
            try await group.waitForAll()
        }
        for runtime in runtimes { await runtime.shutdown() }
        #expect(try await SchemaFixtures.catalog(url: url, schema: "dbos").count == SchemaFixtures.reference.count)
    }

    @Test("two processes launching at once on an empty database both succeed")
    func concurrentProcesses() async throws {
        let url = try await SharedDatabaseURL.fresh("schema_processes")
        let h = MessagingHarness(url: url, runtime: quietRuntime(url: url))
        _ = try await h.query("CREATE SCHEMA dbos_ledger")
        _ = try await h.query("CREATE TABLE dbos_ledger.ledger (workflow_id text, step int)")
        let workers = try (1...2).map { index in
            try ChildWorker(["--url", url, "--executor", "p\(index)", "--workflow", "w\(index)", "--steps", "1", "--start"])
        }
        for worker in workers {
            #expect(await worker.waitFor("RESULT") == "RESULT 1")
            worker.waitUntilExit()
        }
    }

    @Test("a newer schema version is used as it is; an older one is refused clearly")
    func versions() async throws {
        let url = try await SharedDatabaseURL.fresh("schema_versions")
        let first = quietRuntime(url: url)
        try await first.launch()
        await first.shutdown()
        let h = MessagingHarness(url: url, runtime: first)
        _ = try await h.query("UPDATE dbos.dbos_migrations SET version = 999")
        let newer = quietRuntime(url: url)
        try await newer.launch()
        await newer.shutdown()
        _ = try await h.query("UPDATE dbos.dbos_migrations SET version = 100")
        do {
            try await quietRuntime(url: url).launch()
            Issue.record("expected an older schema to be refused")
        } catch let error as DurableError {
            #expect(error.code == .migrationFailed)
            #expect(error.message.contains("100"))
            #expect(error.message.contains("dbos migrate"))
        }
    }

    @Test("with autoMigrate off an empty database is a clear error, a migrated one is used")
    func autoMigrateOff() async throws {
        let url = try await SharedDatabaseURL.fresh("schema_manual")
        do {
            try await quietRuntime(url: url, autoMigrate: false).launch()
            Issue.record("expected migrationFailed")
        } catch let error as DurableError {
            #expect(error.code == .migrationFailed)
            #expect(error.message.contains("autoMigrate"))
        }
        let migrator = quietRuntime(url: url)
        try await migrator.launch()
        await migrator.shutdown()
        let manual = quietRuntime(url: url, autoMigrate: false)
        try await manual.launch()
        await manual.shutdown()
    }

    @Test("the migrations shipped inside the library are the SQL files")
    func embeddedCopyMatchesFiles() throws {
        let directory = SchemaFixtures.repository.appendingPathComponent("Migrations")
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".sql") }.sorted()
        #expect(files.count == ShippedMigrations.all.count)
        for (file, shipped) in zip(files, ShippedMigrations.all) {
            let text = try String(contentsOf: directory.appendingPathComponent(file), encoding: .utf8)
            #expect(shipped.fileName == file)
            #expect(shipped.sql + "\n" == text, "\(file) differs from its shipped copy; run scripts/embed-migrations.sh")
        }
    }

    @Test("a database migrated by DBOS 3.4.0 itself is used as it is", .enabled(if: DBOSPython.available))
    func migratedByDBOS() async throws {
        let url = try await SharedDatabaseURL.fresh("schema_by_dbos")
        try DBOSPython.run(["migrate", "-s", url], executable: DBOSPython.cli)
        let before = try await SchemaFixtures.catalog(url: url, schema: "dbos")
        #expect(before == (try SchemaFixtures.reference))
        let runtime = quietRuntime(url: url)
        runtime.register(Secretive())
        #expect(try await runtime.start(Secretive.self, "on a DBOS-made schema").result() == "on a DBOS-made schema")
        await runtime.shutdown()
        #expect(try await SchemaFixtures.catalog(url: url, schema: "dbos") == before)
    }
}

/// DBOS Python 3.4.0 in the git-ignored virtualenv that scripts/test sets up.
enum DBOSPython {
    static var python: String {
        ProcessInfo.processInfo.environment["DURABLE_DBOS_PYTHON"]
            ?? SchemaFixtures.repository.appendingPathComponent(".venv-dbos/bin/python").path
    }

    /// DBOS's command-line tool, beside the virtualenv's Python.
    static var cli: String { URL(fileURLWithPath: python).deletingLastPathComponent().appendingPathComponent("dbos").path }

    static var available: Bool { FileManager.default.isExecutableFile(atPath: python) && FileManager.default.isExecutableFile(atPath: cli) }

    /// Runs the virtualenv's Python (or `executable`) with `arguments`; returns stdout, throws on a non-zero exit.
    @discardableResult
    static func run(_ arguments: [String], executable: String? = nil) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable ?? python)
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw DurableError(.invalidArgument, "python \(arguments.prefix(3).joined(separator: " ")) exited with \(process.terminationStatus)")
        }
        return String(decoding: data, as: UTF8.self)
    }
}
