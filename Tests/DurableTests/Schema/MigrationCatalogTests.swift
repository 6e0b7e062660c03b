import Foundation
import LibPQ
import TestSupport
import Testing

@testable import Durable

/// The schema our migrations build is DBOS Transact 3.4.0's, object for object: compared with the catalog of a
/// database migrated by DBOS's own `dbos migrate` (Fixtures/dbos-3.4.0-catalog.txt), in `dbos` and in schemas
/// whose names need quoting. Our own tables (`durable_*`, migration 0002) are the only additions allowed.
@Suite("Migration: catalog equals DBOS 3.4.0's", .serialized)
struct MigrationCatalogTests {
    typealias Support = MigrationTestSupport

    @Test("a fresh database gets DBOS 3.4.0's exact catalog in schema dbos, plus only our durable_* tables")
    func freshDatabase() async throws {
        let url = try await TestDatabase.fresh("mig_fresh").url
        #expect(try await Support.catalog(url).isEmpty, "a fresh database has no dbos schema yet")
        let runtime = Support.makeRuntime(Support.configuration(url: url)) { $0.register(MigrationProbeWorkflow()) }
        try await Support.using(runtime) { runtime in
            try await runtime.launch()
            #expect(try await MigrationProbeWorkflow.run(on: runtime, id: "fresh-1") == 41)
        }
        try await Support.expectDBOSCatalog(url)
        #expect(try await Support.dbosVersions(url) == [125])
        #expect(try await Support.durableVersions(url) == [2, 3])
    }

    /// Names that must be quoted everywhere the migrations and the engine use them: an SQL keyword, one with
    /// capitals, spaces and double quotes, one with non-ASCII letters, and one of the longest allowed length.
    static let awkwardSchemas = [
        "select",
        "My \"Odd\" Schema",
        "Schéma ünïcødé 日本語",
        String(repeating: "é", count: 31) + "x",  // 63 bytes, PostgreSQL's limit
    ]

    @Test(
        "a schema name that needs quoting gets the same catalog, and the runtime and the SQL functions work in it",
        arguments: awkwardSchemas)
    func awkwardSchemaName(_ schema: String) async throws {
        #expect(schema.utf8.count <= 63)
        let url = try await TestDatabase.fresh("mig_schema").url
        let runtime = Support.makeRuntime(Support.configuration(url: url, schema: schema)) {
            $0.register(MigrationProbeWorkflow())
        }
        try await Support.using(runtime) { runtime in
            try await runtime.launch()
            #expect(try await MigrationProbeWorkflow.run(on: runtime, id: "awkward-1", input: 5) == 11)
            #expect(try await runtime.status(of: "awkward-1")?.state == .success)
        }
        try await Support.expectDBOSCatalog(url, schema: schema)
        #expect(try await Support.dbosVersions(url, schema: schema) == [125])
        #expect(try await Support.durableVersions(url, schema: schema) == [2, 3])
        // Everything went into that schema: nothing was created under the default name.
        #expect(try await !Support.schemaExists(url, "dbos"))
        let quoted = SQLIdentifier.quote(schema)
        let rows = try await TestDatabase(url: url).query(
            "SELECT count(*) FROM \(quoted).operation_outputs WHERE workflow_uuid = 'awkward-1'")
        #expect(rows.first?.int(0) == 2)

        // The catalog does not compare function bodies, so call them: each must write into this schema.
        let enqueued = try await TestDatabase(url: url).query(
            "SELECT \(quoted).enqueue_workflow('migration-probe', 'not-served', ARRAY['7'::json], workflow_id => 'via-sql')"
        )
        #expect(enqueued.first?.string(0) == "via-sql")
        let queued = try await TestDatabase(url: url).query(
            """
            SELECT s.status, s.queue_name, i.inputs FROM \(quoted).workflow_status s
            JOIN \(quoted).workflow_input i USING (workflow_uuid) WHERE s.workflow_uuid = 'via-sql'
            """)
        #expect(queued.first?.string(0) == "ENQUEUED")
        #expect(queued.first?.string(1) == "not-served")
        #expect(queued.first?.string(2)?.contains("positionalArgs") == true)
        try await TestDatabase(url: url).query(
            "SELECT \(quoted).send_message('via-sql', '\"hello\"'::json, 'greeting', 'message-1')")
        let delivered = try await TestDatabase(url: url).query(
            "SELECT destination_uuid, topic, message FROM \(quoted).notifications WHERE message_uuid = 'message-1'")
        #expect(delivered.first?.string(0) == "via-sql")
        #expect(delivered.first?.string(1) == "greeting")
        #expect(delivered.first?.string(2) == "\"hello\"")
        await #expect(throws: PGError.self) {
            try await TestDatabase(url: url).query("SELECT \(quoted).send_message('no-such-workflow', '1'::json)")
        }
    }

    @Test("the catalog query tells schemas apart: a missing object shows up in the diff")
    func catalogQueryIsNotVacuous() async throws {
        let url = try await TestDatabase.fresh("mig_vacuous").url
        let runtime = Support.makeRuntime(Support.configuration(url: url))
        try await Support.using(runtime) { try await $0.launch() }
        try await TestDatabase(url: url).execute("DROP INDEX dbos.idx_workflow_status_delayed")
        try await TestDatabase(url: url).execute(
            "ALTER TABLE dbos.queues ALTER COLUMN polling_interval_sec SET DEFAULT 2.0")
        let catalog = try await Support.catalog(url).filter { !Support.isDurableOwnFact($0) }
        let fixture = try Support.dbosCatalogFixture()
        #expect(catalog != fixture)
        let diff = Support.diff(expected: fixture, actual: catalog)
        #expect(
            diff.contains("- column queues 009 polling_interval_sec double precision NOT NULL DEFAULT 1.0"), "\(diff)")
        #expect(
            diff.contains("+ column queues 009 polling_interval_sec double precision NOT NULL DEFAULT 2.0"), "\(diff)")
        #expect(diff.contains("- index workflow_status idx_workflow_status_delayed "), "\(diff)")
    }

    @Test("the migrations embedded in the library are the Migrations/*.sql files, byte for byte")
    func embeddedCopyEqualsFiles() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Support.migrationsDirectory.path)
            .filter { $0.hasSuffix(".sql") }
            .sorted()
        #expect(!files.isEmpty)
        #expect(
            SchemaMigrator.embedded.count == files.count,
            "embedded: \(SchemaMigrator.embedded.map(\.fileName)), files: \(files); rerun scripts/embed-migrations.sh")
        #expect(SchemaMigrator.embedded.map(\.fileName) == files, "embedded in file-name order")
        for file in files {
            let text = try String(contentsOf: Support.migrationsDirectory.appendingPathComponent(file), encoding: .utf8)
            guard let entry = SchemaMigrator.embedded.first(where: { $0.fileName == file }) else {
                Issue.record("\(file) is not embedded; rerun scripts/embed-migrations.sh")
                continue
            }
            #expect(entry.number == Int(file.prefix { $0.isNumber }), "\(file)")
            if entry.sql + "\n" != text {
                let diff = Support.diff(
                    expected: text.components(separatedBy: "\n"),
                    actual: (entry.sql + "\n").components(separatedBy: "\n"))
                Issue.record(
                    "the embedded copy of \(file) differs from the file; rerun scripts/embed-migrations.sh\n\(diff)")
            }
        }
        let numbers = SchemaMigrator.embedded.map(\.number)
        #expect(numbers == Array(1...numbers.count), "migrations are numbered 1, 2, 3, … without gaps")
    }
}
