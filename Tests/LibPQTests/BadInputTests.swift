import EmbeddedPostgres
import Foundation
import LibPQ
import TestSupport
import Testing

/// Connection strings that cannot work fail within a few seconds with ``PGError/Kind/connectionFailed``
/// and never show the password.
@Suite("Bad connection input")
struct BadInputTests {
    static let database = SuiteDatabase(prefix: "libpq_badinput")

    /// Connects with `connectionString` and returns the error, checking the bound and that no rendering of the
    /// error holds any of `secrets`.
    private func failedConnection(
        _ connectionString: String,
        secrets: [String],
        connectTimeoutSeconds: Int = 2,
        bound: Double = 30,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async -> PGError? {
        let configuration = PGConfiguration(
            connectionString: ConnectionString(connectionString), connectTimeoutSeconds: connectTimeoutSeconds,
            applicationName: uniqueName("bad_input"))
        let start = ContinuousClock.now
        let error = await expectPostgresError(sourceLocation: sourceLocation) {
            try await within(bound, "connecting to \(ConnectionString(connectionString))") {
                let connection = try await PGConnection.connect(configuration)
                await connection.close()
            }
        }
        #expect(seconds(since: start) < bound, sourceLocation: sourceLocation)
        guard let error else { return nil }
        #expect(error.kind == .connectionFailed, "\(error)", sourceLocation: sourceLocation)
        #expect(error.isConnectionProblem, sourceLocation: sourceLocation)
        #expect(!error.message.isEmpty, sourceLocation: sourceLocation)
        for rendering in renderings(of: error) {
            for secret in secrets {
                #expect(
                    !rendering.contains(secret), "password \"\(secret)\" leaked: \(rendering)",
                    sourceLocation: sourceLocation)
            }
        }
        return error
    }

    @Test(
        "malformed connection strings fail fast without showing the password",
        arguments: [
            "postgresql://user:s3cretpw@host:notaport/db",
            "postgresql://[::1",
            "postgresql://user:s3cretpw@[::1/db",
            "postgresql://user:s3cretpw@127.0.0.1:99999/db",
            "postgresql://user:s3cretpw@127.0.0.1/db?sslmode=bogus",
            "postgresql://user:s3cretpw@127.0.0.1/db?no_such_option=1",
            "postgresql://user:s3cretpw@127.0.0.1/db?connect_timeout=abc",
            "postgresql://user:s3cret%zzpw@127.0.0.1/db",
            "host=127.0.0.1 password=s3cretpw port=notaport",
            "host=127.0.0.1 password='s3cretpw' bogus_keyword=1",
            "host=127.0.0.1 password=s3cretpw port='unterminated",
            "postgresql://user:s3cretpw@127.0.0.1:5432/db?password=s3cretpw&port=notaport",
        ])
    func malformed(connectionString: String) async throws {
        let error = await failedConnection(connectionString, secrets: ["s3cretpw", "s3cret%zzpw", "s3cret"])
        #expect(error != nil)
    }

    @Test("a percent-encoded password is hidden both encoded and decoded")
    func percentEncodedPassword() async throws {
        // "p@ss:w/rd s3cret" encoded; the port makes it fail before any network access.
        _ = await failedConnection(
            "postgresql://user:p%40ss%3Aw%2Frd%20s3cret@127.0.0.1:notaport/db",
            secrets: ["p%40ss%3Aw%2Frd%20s3cret", "p@ss:w/rd s3cret", "s3cret"])
    }

    @Test("an unreachable host gives up within the connect timeout")
    func unreachableHost() async throws {
        // 10.255.255.1 normally swallows packets (a timeout); some networks refuse at once. Either way the
        // failure must come within the bound.
        let error = await failedConnection(
            "postgresql://u:s3cretpw@10.255.255.1:5432/db", secrets: ["s3cretpw"], connectTimeoutSeconds: 2, bound: 30)
        #expect(error != nil)
    }

    @Test("a refused port on 127.0.0.1 fails, naming the port")
    func refusedPort() async throws {
        let port = try FreePort.find()  // free a moment ago, so nothing listens: the connect is refused
        let error = await failedConnection(
            "postgresql://u:s3cretpw@127.0.0.1:\(port)/db", secrets: ["s3cretpw"], bound: 30)
        #expect(error?.message.contains("\(port)") == true, "\(String(describing: error))")
    }

    @Test("a pool whose connections cannot open frees its slots and fails every caller")
    func poolWithUnreachableServer() async throws {
        let port = try FreePort.find()  // free a moment ago, so nothing listens: the connect is refused
        let pool = ConnectionPool(
            configuration: PGConfiguration(
                connectionString: ConnectionString("postgresql://u:s3cretpw@127.0.0.1:\(port)/db"),
                connectTimeoutSeconds: 2),
            maxConnections: 2, acquireTimeout: .seconds(60), logger: testLogger)
        // More callers than slots: the waiters inherit the failed opener's slot and try themselves.
        // The bound only tells a hang from a failure: generous, as a loaded test run can starve these tasks.
        let errors = try await within(60, "six callers against a refused port") {
            try await withThrowingTaskGroup(of: PGError?.self) { group in
                for _ in 0..<6 {
                    group.addTask {
                        do {
                            try await pool.withConnection { _ in }
                            return nil
                        } catch let error as PGError {
                            return error
                        }
                    }
                }
                var collected: [PGError?] = []
                for try await error in group { collected.append(error) }
                return collected
            }
        }
        #expect(errors.count == 6)
        #expect(errors.allSatisfy { $0?.kind == .connectionFailed }, "\(errors)")
        #expect(errors.allSatisfy { !String(describing: $0).contains("s3cretpw") })
        #expect(pool.statistics.open == 0, "failed opens must give their slots back")
        #expect(pool.statistics.waiting == 0)
        await pool.close()
    }

    /// The role the wrong-password test creates. A fixed name so a server can give it a password rule of its own
    /// (`host all durable_password_test 127.0.0.1/32 scram-sha-256`): the embedded cluster trusts only the
    /// `postgres` role over TCP (see ClusterConfiguration.swift), so without such a line pg_hba refuses the role
    /// before any password is checked.
    static let passwordTestRole = "durable_password_test"

    /// A wrong password is refused ("password authentication failed" where the server checks passwords for the
    /// role, "no pg_hba.conf entry" where it refuses the role outright) and shows up in no rendering of the
    /// error. A server that lets the wrong password in does not check passwords at all (trust): then only the
    /// redaction of the connection string is asserted.
    @Test("a wrong password is refused and never shown")
    func wrongPassword() async throws {
        let url = try await Self.database.url()
        let rightPassword = "R1ght-" + uniqueName("pw")
        let wrongPassword = "Wr0ng-" + uniqueName("pw")
        let admin = try await Self.database.connect()
        var role = Self.passwordTestRole
        var createdRole = false
        do {
            try await admin.execute("DROP ROLE IF EXISTS \(role)")
            try await admin.execute("CREATE ROLE \(role) LOGIN PASSWORD '\(rightPassword)'")
            createdRole = true
        } catch let error as PGError where error.sqlState == "42501" {
            // DATABASE_URL's user may not create roles: then its own user with a wrong password will do.
            role = try #require(URLComponents(string: url)?.user, "cannot create a role and DATABASE_URL names no user")
        }
        func configuration(password: String) throws -> PGConfiguration {
            var components = try #require(URLComponents(string: url), "DATABASE_URL is not a URL Foundation can parse")
            components.user = role
            components.password = password
            return PGConfiguration(
                connectionString: ConnectionString(try #require(components.string)), connectTimeoutSeconds: 5,
                applicationName: uniqueName("wrong_pw"))
        }
        func attempt(_ configuration: PGConfiguration) async -> Result<PGConnection, any Error> {
            do {
                return .success(
                    try await within(60, "connecting as \(role)") { try await PGConnection.connect(configuration) })
            } catch {
                return .failure(error)
            }
        }

        // Does this server check the role's password at all? The right one tells.
        var passwordsChecked = false
        if createdRole, case .success(let connection) = await attempt(try configuration(password: rightPassword)) {
            passwordsChecked = true
            await connection.close()
        }

        let wrong = try configuration(password: wrongPassword)
        let start = ContinuousClock.now
        let outcome = await attempt(wrong)
        #expect(seconds(since: start) < 30)  // a hang bound: a stalled machine takes seconds
        switch outcome {
        case .success(let connection):
            // Trust: the server never asked for a password. Nothing to refuse; the string still prints redacted.
            await connection.close()
            #expect(!String(describing: wrong.connectionString).contains(wrongPassword))
        case .failure(let error):
            let postgresError = try #require(error as? PGError, "\(error)")
            #expect(postgresError.kind == .connectionFailed)
            #expect(postgresError.isConnectionProblem)
            let message = postgresError.message
            if passwordsChecked {
                #expect(message.contains("password authentication failed"), "\(message)")
            } else {
                #expect(message.contains("no pg_hba.conf entry") || message.contains("authentication"), "\(message)")
            }
            for rendering in renderings(of: error) {
                #expect(!rendering.contains(wrongPassword), "\(rendering)")
                #expect(!rendering.contains(rightPassword), "\(rendering)")
            }
            // The redacted connection string still names the role, so the error stays useful.
            #expect(message.contains(role), "\(message)")
        }
        if createdRole { try await admin.execute("DROP ROLE \(role)") }
        await admin.close()
    }
}
