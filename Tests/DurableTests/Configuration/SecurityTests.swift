import Durable
import EmbeddedPostgres
import Foundation
import LibPQ
import Logging
import Synchronization
import TestSupport
import Testing

struct Secretive: Workflow {
    static let name = "secretive"
    func run(_ ctx: WorkflowContext, _ input: String) async throws -> String {
        let echoed = try await ctx.step("echo") { input }
        if input.hasPrefix("fail") { throw SecretError(detail: "rejected") }
        return echoed
    }
}

struct SecretError: Error { var detail: String }

@Suite("Security: TLS, least privilege, nothing secret in logs and errors")
struct SecurityTests {
    static var embeddedOnly: Bool { DatabaseEnvironment.current.externalURL == nil }

    @Test(
        "the runtime works under a role that holds rights only on its own schema, and logs hold no password or payload")
    func leastPrivilege() async throws {
        let url = try await TestDatabase.fresh("least_privilege").url
        let admin = MessagingHarness(
            url: url, runtime: MessagingHarness.makeRuntime(url: url, executorID: "admin") { _ in })
        let role = "durable_app_\(UUID().uuidString.prefix(8).lowercased())"
        let password = "pw-\(UUID().uuidString)"
        // The grants a team gives the runtime: log in, and own one schema; nothing else.
        _ = try await admin.query(
            "DO $$ BEGIN CREATE ROLE durable_password_roles NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
        _ = try await admin.query(
            "CREATE ROLE \(SQLIdentifier.quote(role)) LOGIN PASSWORD '\(password)' IN ROLE durable_password_roles")
        _ = try await admin.query("CREATE SCHEMA app_workflows AUTHORIZATION \(SQLIdentifier.quote(role))")
        _ = try await admin.query("CREATE SCHEMA other_team")
        _ = try await admin.query("CREATE TABLE other_team.secrets (v text)")

        var components = try #require(URLComponents(string: url))
        components.user = role
        components.password = password
        let roleURL = try #require(components.string)
        let logs = CapturedLog()
        let runtime = DurableRuntime(
            configuration: DurableConfiguration(databaseURL: roleURL, schema: "app_workflows", executorID: "limited"),
            logger: logs.logger(level: .trace))
        runtime.register(Secretive())
        let payload = "payload-\(UUID().uuidString)"
        #expect(try await runtime.start(Secretive.self, payload).result() == payload)
        do {
            _ = try await runtime.start(Secretive.self, "fail-\(payload)").result()
            Issue.record("expected a failure")
        } catch let error as DurableError {
            #expect(!String(describing: error).contains(password))
        }
        // The role cannot read other schemas.
        let connection = try await PGConnection.connect(PGConfiguration.forTests(roleURL))
        do {
            try await connection.query("SELECT * FROM other_team.secrets")
            Issue.record("the limited role could read another schema")
        } catch let error as PGError {
            #expect(error.sqlState == "42501")
        }
        await connection.close()
        await runtime.shutdown()
        let logged = logs.all.joined(separator: "\n")
        #expect(!logged.isEmpty)
        #expect(!logged.contains(password))
        #expect(!logged.contains(payload))
    }

    @Test("a wrong password is a clear error within seconds that never shows the password")
    func wrongPassword() async throws {
        let url = try await TestDatabase.fresh("wrong_password").url
        var components = try #require(URLComponents(string: url))
        components.user = "durable_password_test"
        components.password = "definitely-not-the-password-\(UUID().uuidString.prefix(6))"
        let secret = components.password!
        let logs = CapturedLog()
        let runtime = DurableRuntime(
            configuration: DurableConfiguration(
                databaseURL: try #require(components.string), reconnectTimeout: .seconds(1)),
            logger: logs.logger(level: .trace))
        let started = ContinuousClock.now
        do {
            try await runtime.launch()
            Issue.record("expected the launch to fail")
        } catch let error as DurableError {
            #expect(error.code == .connectionFailed)
            #expect(!String(describing: error).contains(secret))
        }
        #expect(started.duration(to: .now) < .seconds(30))  // a hang bound: one connect may take its 10 s timeout
        #expect(!logs.contains(secret))
    }

    @Test(
        "connections over TLS: sslmode=require and verify-full against a self-signed CA",
        .enabled(if: embeddedOnly && FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl")))
    func tls() async throws {
        let server = try await EmbeddedPostgres.start(syncToDisk: SharedDatabase.syncsToDisk)
        defer { Task { await server.stop() } }
        let certificates = try TLSFiles.make()
        try certificates.install(into: server.dataDirectory)
        _ = try await server.runSQL(
            "ALTER SYSTEM SET ssl = on; ALTER SYSTEM SET ssl_cert_file = 'server.crt'; ALTER SYSTEM SET ssl_key_file = 'server.key';"
        )
        _ = try await server.runSQL("SELECT pg_reload_conf();")
        // pg_reload_conf only signals the server: wait until it accepts TLS (a fixed pause was sometimes too short).
        let reloadDeadline = ContinuousClock.now.advanced(by: .seconds(30))
        while true {
            do {
                let probe = try await PGConnection.connect(
                    PGConfiguration(connectionString: ConnectionString(server.url + "?sslmode=require")))
                await probe.close()
                break
            } catch  where ContinuousClock.now < reloadDeadline {
                try await Task.sleep(for: .milliseconds(100))
            }
        }

        for query in ["sslmode=require", "sslmode=verify-full&sslrootcert=\(certificates.caPath)"] {
            let url = server.url + "?" + query
            let connection = try await PGConnection.connect(PGConfiguration.forTests(url))
            #expect(
                try await connection.query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").first?.bool(0)
                    == true)
            await connection.close()
            var logger = Logger(label: "tls")
            logger.logLevel = .critical
            let runtime = DurableRuntime(
                configuration: DurableConfiguration(databaseURL: url, executorID: "tls"), logger: logger)
            runtime.register(Secretive())
            #expect(try await runtime.start(Secretive.self, "over tls").result() == "over tls")
            await runtime.shutdown()
        }
        // verify-full with a CA that did not sign the server's certificate is refused.
        let stranger = try TLSFiles.make()
        do {
            _ = try await PGConnection.connect(
                PGConfiguration(
                    connectionString: ConnectionString(
                        server.url + "?sslmode=verify-full&sslrootcert=\(stranger.caPath)")))
            Issue.record("expected verification to fail")
        } catch let error as PGError {
            #expect(error.kind == .connectionFailed)
            #expect(error.message.contains("certificate"))
        }
    }
}

/// A throwaway CA and a server certificate for 127.0.0.1, made with the openssl command.
struct TLSFiles {
    let directory: String
    var caPath: String { directory + "/ca.crt" }

    static func make() throws -> TLSFiles {
        let directory = NSTemporaryDirectory() + "durable-tls-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let extensions = directory + "/san.ext"
        try "subjectAltName = IP:127.0.0.1, DNS:localhost\n".write(
            toFile: extensions, atomically: true, encoding: .utf8)
        try run([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=durable-test-ca",
            "-keyout", directory + "/ca.key", "-out", directory + "/ca.crt",
        ])
        try run([
            "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
            "-keyout", directory + "/server.key", "-out", directory + "/server.csr",
        ])
        try run([
            "x509", "-req", "-in", directory + "/server.csr", "-CA", directory + "/ca.crt", "-CAkey",
            directory + "/ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", extensions, "-out", directory + "/server.crt",
        ])
        return TLSFiles(directory: directory)
    }

    /// Copies the server's certificate and key into the data directory, readable only by the server's user.
    func install(into dataDirectory: String) throws {
        let owner = try FileManager.default.attributesOfItem(atPath: dataDirectory)[.ownerAccountName] as? String
        for file in ["server.crt", "server.key"] {
            let target = dataDirectory + "/" + file
            try? FileManager.default.removeItem(atPath: target)
            try FileManager.default.copyItem(atPath: directory + "/" + file, toPath: target)
            var attributes: [FileAttributeKey: Any] = [.posixPermissions: 0o600]
            if let owner { attributes[.ownerAccountName] = owner }
            try FileManager.default.setAttributes(attributes, ofItemAtPath: target)
        }
    }

    private static func run(_ arguments: [String]) throws {
        let process = try ChildProcess("/usr/bin/openssl", arguments, standardOutput: .null, standardError: .null)
        guard process.waitUntilExit().succeeded else { throw CocoaError(.fileWriteUnknown) }
    }
}
