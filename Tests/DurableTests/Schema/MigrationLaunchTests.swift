import Durable
import Foundation
import LibPQ
import TestSupport
import Testing

/// Launching on a database that already has a schema: ours, DBOS's, a newer or an older one, with and without
/// `autoMigrate`.
@Suite("Migration: launching on existing schemas", .serialized)
struct MigrationLaunchTests {
    typealias Support = MigrationTestSupport

    /// Migrates a fresh database with our runtime and returns its URL.
    private func migratedDatabase(_ prefix: String) async throws -> String {
        let url = try await TestDatabase.fresh(prefix).url
        let runtime = Support.makeRuntime(Support.configuration(url: url))
        try await Support.using(runtime) { try await $0.launch() }
        return url
    }

    /// Emulates a schema DBOS built (no `durable_*` tables) without needing DBOS: ours minus our own tables.
    private func dbosOnlyDatabase(_ prefix: String) async throws -> String {
        let url = try await migratedDatabase(prefix)
        try await TestDatabase(url: url).execute(
            "DROP TABLE dbos.durable_migrations, dbos.durable_executors, dbos.durable_executor_instances")
        try await Support.expectDBOSCatalog(url, withOwnTables: false)
        return url
    }

    @Test("launching again on a migrated database changes nothing: same objects, one version row = 125")
    func launchTwice() async throws {
        let url = try await TestDatabase.fresh("mig_twice").url
        let first = Support.makeRuntime(Support.configuration(url: url, executorID: "first")) {
            $0.register(MigrationProbeWorkflow())
        }
        try await Support.using(first) { runtime in
            try await runtime.launch()
            try await runtime.launch()  // a second call on the same instance waits for the first, does nothing more
            #expect(try await MigrationProbeWorkflow.run(on: runtime, id: "twice-1") == 41)
        }
        let before = try await Support.fingerprint(url)
        let catalogBefore = try await Support.catalog(url)

        let second = Support.makeRuntime(Support.configuration(url: url, executorID: "second")) {
            $0.register(MigrationProbeWorkflow())
        }
        try await Support.using(second) { runtime in
            try await runtime.launch()
            // The run recorded by the first runtime is there for the second.
            #expect(try await runtime.handle(for: "twice-1", resultType: Int.self).result() == 41)
            #expect(try await MigrationProbeWorkflow.run(on: runtime, id: "twice-2", input: 1) == 3)
        }
        Support.expectSameLines(
            try await Support.fingerprint(url), before, "relation/function oids and version-row xmins")
        Support.expectSameLines(try await Support.catalog(url), catalogBefore, "the catalog")
        #expect(try await Support.dbosVersions(url) == [125])
        #expect(try await Support.durableVersions(url) == [2, 3])
        try await Support.expectDBOSCatalog(url)
    }

    @Test("a schema at a newer DBOS version than ours is used as it is, with or without autoMigrate")
    func newerVersionIsUsedAsIs() async throws {
        let url = try await migratedDatabase("mig_newer")
        try await TestDatabase(url: url).query("UPDATE dbos.dbos_migrations SET version = 999")
        let before = try await Support.fingerprint(url)
        for autoMigrate in [true, false] {
            let runtime = Support.makeRuntime(Support.configuration(url: url, autoMigrate: autoMigrate)) {
                $0.register(MigrationProbeWorkflow())
            }
            try await Support.using(runtime) { runtime in
                try await runtime.launch()
                #expect(try await MigrationProbeWorkflow.run(on: runtime, id: "newer-\(autoMigrate)") == 41)
            }
        }
        #expect(try await Support.dbosVersions(url) == [999], "the version row is left alone, not downgraded")
        Support.expectSameLines(
            try await Support.fingerprint(url), before, "relation/function oids and version-row xmins")
    }

    @Test("a schema at an older DBOS version fails launch with migrationFailed naming the version, and is left alone")
    func olderVersionFails() async throws {
        let url = try await migratedDatabase("mig_older")
        try await TestDatabase(url: url).query("UPDATE dbos.dbos_migrations SET version = 100")
        let before = try await Support.fingerprint(url)
        for autoMigrate in [true, false] {
            let runtime = Support.makeRuntime(Support.configuration(url: url, autoMigrate: autoMigrate)) {
                $0.register(MigrationProbeWorkflow())
            }
            let error = await Support.launchFailure(runtime)
            #expect(error?.code == .migrationFailed, "\(String(describing: error))")
            #expect(error?.message.contains("100") == true, "names the version found: \(String(describing: error))")
            #expect(error?.message.contains("125") == true, "names the version needed: \(String(describing: error))")
            #expect(error?.message.contains("dbos migrate") == true, "says how to fix it: \(String(describing: error))")
        }
        #expect(try await Support.dbosVersions(url) == [100])
        Support.expectSameLines(
            try await Support.fingerprint(url), before, "relation/function oids and version-row xmins")
    }

    @Test("autoMigrate off on an empty database fails with an actionable migrationFailed and creates nothing")
    func autoMigrateOffOnEmptyDatabase() async throws {
        let url = try await TestDatabase.fresh("mig_nomigrate_empty").url
        let runtime = Support.makeRuntime(Support.configuration(url: url, autoMigrate: false))
        let error = await Support.launchFailure(runtime)
        #expect(error?.code == .migrationFailed, "\(String(describing: error))")
        let message = error?.message ?? ""
        #expect(message.contains("autoMigrate"), "names the setting: \(message)")
        #expect(
            message.contains("dbos migrate") && message.contains("Migrations/"),
            "says how to create the schema: \(message)")
        #expect(message.contains("\"dbos\""), "names the schema: \(message)")
        #expect(try await !Support.schemaExists(url, "dbos"))
    }

    @Test("autoMigrate off on an existing schema (an empty dbos schema created by hand) fails the same way")
    func autoMigrateOffOnEmptySchema() async throws {
        let url = try await TestDatabase.fresh("mig_nomigrate_schema").url
        try await TestDatabase(url: url).execute("CREATE SCHEMA dbos")
        let runtime = Support.makeRuntime(Support.configuration(url: url, autoMigrate: false))
        let error = await Support.launchFailure(runtime)
        #expect(error?.code == .migrationFailed, "\(String(describing: error))")
        #expect(try await Support.catalog(url).isEmpty)
    }

    @Test("autoMigrate off on a database we migrated launches and runs workflows")
    func autoMigrateOffOnMigratedDatabase() async throws {
        let url = try await migratedDatabase("mig_nomigrate_ok")
        let before = try await Support.fingerprint(url)
        let runtime = Support.makeRuntime(Support.configuration(url: url, autoMigrate: false)) {
            $0.register(MigrationProbeWorkflow())
        }
        try await Support.using(runtime) { runtime in
            try await runtime.launch()
            #expect(try await MigrationProbeWorkflow.run(on: runtime, id: "no-migrate-1") == 41)
        }
        Support.expectSameLines(
            try await Support.fingerprint(url), before, "relation/function oids and version-row xmins")
    }

    @Test("autoMigrate off on a DBOS-built schema (no durable_* tables) launches and creates nothing")
    func autoMigrateOffOnDBOSOnlySchema() async throws {
        let url = try await dbosOnlyDatabase("mig_nomigrate_dbos")
        let runtime = Support.makeRuntime(Support.configuration(url: url, autoMigrate: false)) {
            $0.register(MigrationProbeWorkflow())
        }
        try await Support.using(runtime) { runtime in
            try await runtime.launch()
            #expect(try await MigrationProbeWorkflow.run(on: runtime, id: "dbos-only-1") == 41)
        }
        try await Support.expectDBOSCatalog(url, withOwnTables: false)
        #expect(try await Support.dbosVersions(url) == [125])
    }

    @Test("on a DBOS-built schema (no durable_* tables) launch adds only our tables and leaves DBOS's objects alone")
    func addsOwnTablesToDBOSOnlySchema() async throws {
        let url = try await dbosOnlyDatabase("mig_add_own")
        let before = try await Support.fingerprint(url)
        let runtime = Support.makeRuntime(Support.configuration(url: url)) { $0.register(MigrationProbeWorkflow()) }
        try await Support.using(runtime) { runtime in
            try await runtime.launch()
            #expect(try await MigrationProbeWorkflow.run(on: runtime, id: "add-own-1") == 41)
        }
        try await Support.expectDBOSCatalog(url)
        #expect(try await Support.dbosVersions(url) == [125])
        #expect(try await Support.durableVersions(url) == [2, 3])
        let after = try await Support.fingerprint(url)
        // Every DBOS object keeps its oid and the version row is not rewritten; only durable_* lines are new.
        Support.expectSameLines(
            after.filter { !$0.contains("durable_") }, before, "DBOS's relation/function oids and version-row xmin")
    }

    @Test("an empty dbos_migrations table, as an interrupted `dbos migrate` leaves it, is completed by launch")
    func emptyVersionTableIsCompleted() async throws {
        let url = try await TestDatabase.fresh("mig_empty_version").url
        // DBOS's ensure_dbos_schema commits these two statements before migration 1 runs in a transaction of its own.
        try await TestDatabase(url: url).execute(
            """
            CREATE SCHEMA dbos;
            CREATE TABLE dbos.dbos_migrations (version BIGINT NOT NULL PRIMARY KEY);
            """)
        let runtime = Support.makeRuntime(Support.configuration(url: url)) { $0.register(MigrationProbeWorkflow()) }
        try await Support.using(runtime) { runtime in
            try await runtime.launch()
            #expect(try await MigrationProbeWorkflow.run(on: runtime, id: "empty-version-1") == 41)
        }
        try await Support.expectDBOSCatalog(url)
        #expect(try await Support.dbosVersions(url) == [125])
    }

    @Test("with waitForDatabaseAtLaunch, launch keeps trying while the database cannot be reached yet")
    func launchWaitsForTheDatabase() async throws {
        // A database that does not exist yet stands for a server that is still starting: connecting fails.
        let existing = try await TestDatabase.fresh("mig_not_yet").url
        var components = try #require(URLComponents(string: existing))
        let later = components.path.dropFirst() + "_later"
        components.path = "/" + later
        let url = try #require(components.string)
        var configuration = Support.configuration(url: url)
        configuration.waitForDatabaseAtLaunch = .seconds(30)
        let runtime = Support.makeRuntime(configuration) { $0.register(MigrationProbeWorkflow()) }
        let launch = Task { try await runtime.launch() }
        try await Task.sleep(for: .seconds(1))
        try await TestDatabase(url: existing).query("CREATE DATABASE \(SQLIdentifier.quote(String(later)))")
        try await Support.using(runtime) { runtime in
            try await launch.value
            #expect(try await MigrationProbeWorkflow.run(on: runtime, id: "waited-1") == 41)
        }
        try await Support.expectDBOSCatalog(url)
    }

    @Test(
        "with waitForDatabaseAtLaunch, a database that stays unreachable fails launch with connectionFailed once that wait has passed"
    )
    func unreachableDatabaseFails() async throws {
        let existing = try await TestDatabase.fresh("mig_never").url
        var components = try #require(URLComponents(string: existing))
        components.path += "_never"
        var configuration = Support.configuration(url: try #require(components.string))
        configuration.waitForDatabaseAtLaunch = .seconds(2)
        let started = ContinuousClock.now
        let error = await Support.launchFailure(Support.makeRuntime(configuration))
        let elapsed = started.duration(to: .now)
        #expect(error?.code == .connectionFailed, "\(String(describing: error))")
        #expect(
            error?.message.contains("connect to the database") == true,
            "says what it was doing: \(String(describing: error))")
        #expect(elapsed >= .seconds(2), "retried for waitForDatabaseAtLaunch: \(elapsed)")
    }

    @Test(
        "schema names the migrations cannot hold are refused before connecting",
        arguments: ["", "a$$b", String(repeating: "x", count: 64)])
    func unusableSchemaNames(_ schema: String) async throws {
        // No database needed: validation happens before anything connects.
        let runtime = Support.makeRuntime(
            Support.configuration(url: "postgresql://nobody@127.0.0.1:1/none", schema: schema))
        let error = await Support.launchFailure(runtime)
        #expect(error?.code == .invalidConfiguration, "\(String(describing: error))")
    }
}
