import LibPQ
import TestSupport
import Testing

/// Backends killed with `pg_terminate_backend`: idle ones are replaced transparently, busy ones report a
/// connection problem and are discarded.
@Suite("Connection loss")
struct ConnectionLossTests {
    static let database = SuiteDatabase(prefix: "libpq_loss")

    private func makePool(maxConnections: Int, prepared: Bool = true) async throws -> ConnectionPool {
        ConnectionPool(
            configuration: try await Self.database.configuration(usePreparedStatements: prepared),
            maxConnections: maxConnections, acquireTimeout: .seconds(30), logger: testLogger)
    }

    private static let pidQuery: PGQuery = "SELECT pg_backend_pid()"

    @Test(
        "an idle pooled connection killed by the server reconnects before the next statement", arguments: [true, false])
    func idleConnectionTerminated(prepared: Bool) async throws {
        let pool = try await makePool(maxConnections: 1, prepared: prepared)
        let admin = try await Self.database.connect()
        // Prepare a parameterised statement on the old session too, so a stale plan name would show.
        let oldPid = try #require(
            try await pool.withConnection { connection in
                _ = try await connection.query("SELECT $1::int + 1", [1])
                return try await connection.query(Self.pidQuery).first?.int(0)
            })
        try await terminateBackend(oldPid, admin: admin)

        let (newPid, sum) = try await within(60, "the first statement after the kill") {
            try await pool.withConnection { connection in
                (
                    try await connection.query(Self.pidQuery).first?.int(0),
                    try await connection.query("SELECT $1::int + 1", [41]).first?.int(0)
                )
            }
        }
        #expect(newPid != nil)
        #expect(newPid != oldPid)
        #expect(sum == 42)
        #expect(pool.statistics.open == 1)
        #expect(pool.statistics.idle == 1)
        await admin.close()
        await pool.close()
    }

    @Test(
        "a connection killed during a long query reports a connection problem and is discarded",
        arguments: [true, false])
    func terminatedDuringQuery(prepared: Bool) async throws {
        let pool = try await makePool(maxConnections: 1, prepared: prepared)
        let admin = try await Self.database.connect()
        let pidKnown = Gate()
        let victimPid = Recorder<Int>()
        // pg_sleep(60): if the query were not interrupted, the 40 s bound below would catch it.
        let victim = Task {
            try await pool.withConnection { connection in
                await victimPid.append(try await connection.query(Self.pidQuery).first?.int(0) ?? -1)
                pidKnown.open()
                try await connection.query("SELECT pg_sleep($1::float8)", [60.0])
            }
        }
        try await within(60, "the victim to start") { await pidKnown.wait() }
        let pid = try #require(await victimPid.items.first)
        try await eventually(60, "the victim's pg_sleep to be running") {
            try await admin.query(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND state = 'active' AND query LIKE '%pg_sleep%'",
                [pid]
            ).first?.int(0) == 1
        }
        let start = ContinuousClock.now
        _ = try await admin.query("SELECT pg_terminate_backend($1)", [pid])

        let error = await expectPostgresError {
            try await within(60, "the interrupted query to fail") { try await victim.value }
        }
        #expect(seconds(since: start) < 40)  // a hang bound, still below the pg_sleep(60)
        #expect(error?.isConnectionProblem == true, "\(String(describing: error))")
        #expect(
            error?.kind == .connectionLost || error?.sqlState?.hasPrefix("57P0") == true, "\(String(describing: error))"
        )

        // The broken connection was discarded, and the next caller gets a healthy new one.
        #expect(pool.statistics.open == 0)
        let newPid = try await within(60, "a query after the kill") {
            try await pool.withConnection { try await $0.query(Self.pidQuery).first?.int(0) }
        }
        #expect(newPid != nil)
        #expect(newPid != pid)
        #expect(pool.statistics.open == 1)
        await admin.close()
        await pool.close()
    }

    @Test("a single connection killed mid-query is broken for good and says so")
    func brokenConnectionStaysBroken() async throws {
        let connection = try await Self.database.connect()
        let admin = try await Self.database.connect()
        let pid = try #require(try await connection.query(Self.pidQuery).first?.int(0))
        let sleeper = Task { try await connection.query("SELECT pg_sleep(60)") }
        try await eventually(60, "pg_sleep to be running") {
            try await admin.query(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND state = 'active'", [pid]
            ).first?.int(0) == 1
        }
        _ = try await admin.query("SELECT pg_terminate_backend($1)", [pid])
        let error = await expectPostgresError { try await within(60, "the killed query") { try await sleeper.value } }
        #expect(error?.isConnectionProblem == true)
        #expect(await connection.isBroken)
        #expect(!connection.isReusable)
        // Later statements fail at once instead of silently opening a new session.
        let later = await expectPostgresError {
            try await within(60, "a statement on a broken connection") { try await connection.query("SELECT 1") }
        }
        #expect(later != nil)
        await connection.close()
        await admin.close()
    }

    /// A session that dies inside a transaction block must not be replaced silently: the statements that follow
    /// would run outside the transaction on a fresh session and commit on their own.
    @Test(
        "a connection killed while idle inside a transaction fails the transaction; nothing commits",
        arguments: [true, false])
    func terminatedInsideTransaction(prepared: Bool) async throws {
        let pool = try await makePool(maxConnections: 1, prepared: prepared)
        let admin = try await Self.database.connect()
        let table = uniqueName("tx_kill")
        try await pool.withConnection { try await $0.execute("CREATE TABLE \(table) (id int)") }

        let error = await expectPostgresError {
            try await within(30, "a transaction whose session was killed") {
                try await pool.withTransaction { connection in
                    try await connection.query("INSERT INTO \(table) VALUES ($1)", [1])
                    let pid = try #require(try await connection.query(Self.pidQuery).first?.int(0))
                    try await terminateBackend(pid, admin: admin)
                    try await connection.query("INSERT INTO \(table) VALUES ($1)", [2])
                }
            }
        }
        #expect(error?.isConnectionProblem == true, "\(String(describing: error))")

        let rows = try await within(60, "a query after the failed transaction") {
            try await pool.withConnection {
                try await $0.query("SELECT id FROM \(table) ORDER BY id", []).rows.compactMap { $0.int(0) }
            }
        }
        #expect(rows == [], "rows committed from a transaction whose session died: \(rows)")
        #expect(pool.statistics.open == 1)
        await admin.close()
        await pool.close()
    }

    @Test("several idle pooled connections killed at once are all replaced")
    func allIdleConnectionsTerminated() async throws {
        let applicationName = uniqueName("loss_all")
        let pool = ConnectionPool(
            configuration: try await Self.database.configuration(applicationName: applicationName),
            maxConnections: 3, acquireTimeout: .seconds(30), logger: testLogger)
        let admin = try await Self.database.connect()
        let barrier = Barrier(count: 3)
        try await within(60, "three connections opened") {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<3 {
                    group.addTask { try await pool.withConnection { _ in await barrier.arrive() } }
                }
                try await group.waitForAll()
            }
        }
        #expect(pool.statistics.idle == 3)
        _ = try await admin.query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", [applicationName])
        try await eventually(60, "the pool's backends to exit") {
            try await backendCount(applicationName: applicationName, admin: admin) == 0
        }
        let results = try await within(60, "queries after the kill") {
            try await withThrowingTaskGroup(of: Int?.self) { group in
                for value in 0..<9 {
                    group.addTask {
                        try await pool.withConnection { try await $0.query("SELECT $1::int", [value]).first?.int(0) }
                    }
                }
                var collected: [Int] = []
                for try await value in group { collected.append(value ?? -1) }
                return collected.sorted()
            }
        }
        #expect(results == Array(0..<9))
        #expect(pool.statistics.open <= 3)
        await admin.close()
        await pool.close()
    }

    @Test("close() twice and statements after close() fail cleanly instead of hanging")
    func useAfterClose() async throws {
        let connection = try await Self.database.connect()
        await connection.close()
        try await within(60, "a second close()") { await connection.close() }
        let error = await expectPostgresError {
            try await within(60, "a statement after close()") { try await connection.query("SELECT 1") }
        }
        #expect(error?.kind == .closed)
        #expect(await connection.isBroken)
        #expect(!connection.isReusable)
    }
}

#if os(Linux)
    import Foundation

    @Suite("Connection threads")
    struct ConnectionThreadTests {
        /// The ids of this process's threads, from /proc.
        private static func threads() -> Set<String> {
            Set((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? [])
        }

        /// Each connection owns a thread; closing and dropping it must let that thread end (a thread stopped too
        /// early would strand the connection's isolated deinit, one stopped never would leak a thread per
        /// connection). Other suites start and end threads meanwhile, so the check follows the threads that
        /// appeared while these connections were opened (ours among them), not the process's thread count, which
        /// other suites could keep high past any deadline.
        @Test("closed connections give their threads back")
        func threadsEnd() async throws {
            let count = 30
            let before = Self.threads()
            var connections: [PGConnection] = []
            for _ in 0..<count { connections.append(try await ConnectionLossTests.database.connect()) }
            let appeared = Self.threads().subtracting(before)
            #expect(appeared.count >= count, "only \(appeared.count) new threads for \(count) connections")
            for connection in connections { await connection.close() }
            connections.removeAll()
            // Ours must all go; threads other suites started alongside may stay.
            try await eventually(30, "connection threads to exit") {
                appeared.subtracting(Self.threads()).count >= count
            }
        }
    }
#endif
