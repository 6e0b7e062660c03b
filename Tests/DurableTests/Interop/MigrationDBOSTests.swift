import Durable
import Foundation
import LibPQ
import TestSupport
import Testing

/// Schemas built by DBOS Transact 3.4.0's own `dbos migrate` (from the virtualenv in `.venv-dbos` or
/// `DURABLE_DBOS_VENV`): our runtime uses them as they are, and DBOS finds nothing to do on ours. Skipped when
/// the virtualenv is absent.
@Suite(
    "Migration: schemas built by DBOS 3.4.0", .tags(.interop), .skippedInFastRuns, .serialized,
    .enabled(
        if: MigrationTestSupport.hasDBOS,
        "needs dbos 3.4.0 in .venv-dbos or DURABLE_DBOS_VENV (scripts/test sets it up)"))
struct MigrationDBOSTests {
    typealias Support = MigrationTestSupport

    @Test("`dbos migrate` builds the fixture's catalog, and our runtime runs on it adding only its own tables")
    func dbosMigratedSchemaIsUsedAsIs() async throws {
        let url = try await TestDatabase.fresh("mig_dbos_built").url
        try await Support.dbosCLI(["migrate", "-s", url])
        // The fixture is still what DBOS 3.4.0 builds (on this server version).
        try await Support.expectDBOSCatalog(url, withOwnTables: false)
        #expect(try await Support.dbosVersions(url) == [125])
        let before = try await Support.fingerprint(url)

        let runtime = Support.makeRuntime(Support.configuration(url: url)) { $0.register(MigrationProbeWorkflow()) }
        try await Support.using(runtime) { runtime in
            try await runtime.launch()
            #expect(try await MigrationProbeWorkflow.run(on: runtime, id: "on-dbos-1") == 41)
        }
        try await Support.expectDBOSCatalog(url)
        #expect(try await Support.dbosVersions(url) == [125])
        #expect(try await Support.durableVersions(url) == [2, 3])
        Support.expectSameLines(
            try await Support.fingerprint(url).filter { !$0.contains("durable_") }, before,
            "DBOS's relation/function oids and version-row xmin")
    }

    @Test("`dbos migrate` on a schema our runtime built finds nothing to do")
    func dbosMigrateOnOurSchemaIsANoOp() async throws {
        let url = try await TestDatabase.fresh("mig_dbos_noop").url
        let runtime = Support.makeRuntime(Support.configuration(url: url))
        try await Support.using(runtime) { try await $0.launch() }
        let before = try await Support.fingerprint(url)
        try await Support.dbosCLI(["migrate", "-s", url])
        Support.expectSameLines(
            try await Support.fingerprint(url), before, "relation/function oids and version-row xmins")
        #expect(try await Support.dbosVersions(url) == [125])
    }

    @Test(
        "a schema `dbos migrate --schema` built under a name that needs quoting is used as is",
        arguments: ["select", "My \"Odd\" Schema", "Schéma ünïcødé 日本語"])
    func dbosMigratedCustomSchema(_ schema: String) async throws {
        let url = try await TestDatabase.fresh("mig_dbos_schema").url
        try await Support.dbosCLI(["migrate", "-s", url, "--schema", schema])
        try await Support.expectDBOSCatalog(url, schema: schema, withOwnTables: false)
        let runtime = Support.makeRuntime(Support.configuration(url: url, schema: schema)) {
            $0.register(MigrationProbeWorkflow())
        }
        try await Support.using(runtime) { runtime in
            try await runtime.launch()
            #expect(try await MigrationProbeWorkflow.run(on: runtime, id: "custom-1") == 41)
        }
        try await Support.expectDBOSCatalog(url, schema: schema)
        #expect(try await Support.dbosVersions(url, schema: schema) == [125])
        #expect(try await !Support.schemaExists(url, "dbos"))
    }

    /// When our runtime starts launching relative to `dbos migrate` on the same empty database.
    enum RaceStart: String, CaseIterable, CustomTestStringConvertible, Sendable {
        /// Both at once (DBOS's interpreter takes a while to start, so ours usually migrates first).
        case together
        /// The moment DBOS has committed its schema: DBOS holds the lock and has migrations still to apply.
        case whenDBOSSchemaAppears
        /// The moment DBOS's version row appears: usually DBOS still holds the lock and the version is below 125
        /// (the deterministic versions of these races are in MigrationConcurrencyTests).
        case whenDBOSVersionRowAppears
        var testDescription: String { rawValue }
    }

    /// DBOS applies its 125 migrations one transaction each under a session advisory lock; a runtime launching
    /// meanwhile sees a half-built schema and must wait for that lock rather than call it "older" or rebuild it.
    @Test(
        "`dbos migrate` and our runtime launching at the same time on an empty database both succeed",
        arguments: RaceStart.allCases)
    func raceWithDBOSMigrate(_ start: RaceStart) async throws {
        let url = try await TestDatabase.fresh("mig_dbos_race").url
        let venv = try #require(Support.dbosVenv)
        async let dbos = Support.run(venv + "/bin/dbos", ["migrate", "-s", url])
        var observed = "-"
        switch start {
        case .together:
            break
        case .whenDBOSSchemaAppears:
            observed = try await pollUntil(url, "SELECT count(*) FROM pg_namespace WHERE nspname = 'dbos'") {
                $0 == "1"
            }
        case .whenDBOSVersionRowAppears:
            observed = try await pollUntil(url, "SELECT max(version) FROM dbos.dbos_migrations") { $0 != nil }
        }
        let runtime = Support.makeRuntime(Support.configuration(url: url)) { $0.register(MigrationProbeWorkflow()) }
        var launchError: (any Error)?
        do {
            try await Support.using(runtime) { runtime in
                try await runtime.launch()
                #expect(try await MigrationProbeWorkflow.run(on: runtime, id: "race-1") == 41)
            }
        } catch {
            launchError = error
        }
        let dbosOutput = try await dbos
        #expect(
            launchError == nil,
            "our launch failed (launched after observing \(observed)): \(String(describing: launchError))")
        #expect(dbosOutput.status == 0, "dbos migrate failed: \(dbosOutput)")
        try await Support.expectDBOSCatalog(url)
        #expect(try await Support.dbosVersions(url) == [125])
        #expect(try await Support.durableVersions(url) == [2, 3])
    }

    /// Runs `sql` (one value) every few milliseconds on one connection, errors counting as nil, until `done`
    /// accepts the value; returns it. Gives up after 60 s.
    private func pollUntil(_ url: String, _ sql: String, _ done: (String?) -> Bool) async throws -> String {
        let connection = try await PGConnection.connect(PGConfiguration.forTests(url, usePreparedStatements: false))
        let deadline = ContinuousClock.now.advanced(by: .seconds(60))
        while ContinuousClock.now < deadline {
            let value = try? await connection.query(sql, []).first?.string(0)
            if done(value) {
                await connection.close()
                return value ?? "nil"
            }
            try await Task.sleep(for: .milliseconds(2))
        }
        await connection.close()
        Issue.record("gave up waiting for \(sql)")
        return "timeout"
    }
}
