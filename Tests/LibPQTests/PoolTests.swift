import LibPQ
import Synchronization
import TestSupport
import Testing

/// A counter shared by concurrent tasks that also remembers its highest value.
final class HighWaterMark: Sendable {
    private let state = Mutex<(current: Int, highest: Int)>((0, 0))
    func enter() {
        state.withLock {
            $0.current += 1
            $0.highest = max($0.highest, $0.current)
        }
    }
    func leave() { state.withLock { $0.current -= 1 } }
    var highest: Int { state.withLock { $0.highest } }
}

/// `count` tasks meet here: each `arrive()` suspends until all have arrived.
final class Barrier: Sendable {
    private let count: Int
    private let arrived = Mutex(0)
    private let gate = Gate()
    init(count: Int) { self.count = count }
    func arrive() async {
        let all = arrived.withLock { value -> Bool in
            value += 1
            return value == count
        }
        if all { gate.open() }
        await gate.wait()
    }
}

/// Holds a pool's connection from a separate task until ``release()``.
struct HeldConnection {
    let task: Task<Void, any Error>
    let release: Gate

    static func hold(_ pool: ConnectionPool) async throws -> HeldConnection {
        let acquired = Gate()
        let release = Gate()
        // A failure to get the connection (say the connect failed) opens the gate too and is thrown at once,
        // rather than waiting out the bound below as if it hung.
        let failure = Mutex<(any Error)?>(nil)
        let task = Task {
            do {
                try await pool.withConnection { _ in
                    acquired.open()
                    await release.wait()
                }
            } catch {
                failure.withLock { $0 = error }
                acquired.open()
                throw error
            }
        }
        try await within(60, "the first caller to get a connection") { await acquired.wait() }
        if let error = failure.withLock({ $0 }) { throw error }
        return HeldConnection(task: task, release: release)
    }

    func finish() async throws {
        release.open()
        try await within(60, "the holder to hand its connection back") { try await task.value }
    }
}

@Suite("Connection pool")
struct PoolTests {
    static let database = SuiteDatabase(prefix: "libpq_pool")

    private func makePool(
        maxConnections: Int, acquireTimeout: Duration = .seconds(60), applicationName: String = uniqueName("pool")
    ) async throws -> ConnectionPool {
        ConnectionPool(
            configuration: try await Self.database.configuration(applicationName: applicationName),
            maxConnections: maxConnections, acquireTimeout: acquireTimeout, logger: testLogger)
    }

    @Test("20 concurrent callers never get more than maxConnections connections")
    func maxConnectionsRespected() async throws {
        let applicationName = uniqueName("pool_max")
        let limit = 4
        let pool = try await makePool(maxConnections: limit, applicationName: applicationName)
        let inside = HighWaterMark()
        let backendCounts = Recorder<Int>()
        let openCounts = Recorder<Int>()
        try await within(60, "20 callers through a pool of 4") {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for caller in 0..<20 {
                    group.addTask {
                        try await pool.withConnection { connection in
                            inside.enter()
                            defer { inside.leave() }
                            await openCounts.append(pool.statistics.open)
                            let backends =
                                try await connection.query(
                                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                                    [applicationName]
                                ).first?.int(0) ?? -1
                            await backendCounts.append(backends)
                            try await connection.query("SELECT pg_sleep(0.02), $1::int", [caller])
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
        #expect(inside.highest <= limit)
        #expect(inside.highest >= 1)
        let opens = await openCounts.items
        let backends = await backendCounts.items
        #expect(opens.count == 20)
        #expect(opens.allSatisfy { $0 >= 1 && $0 <= limit }, "statistics.open seen: \(opens)")
        #expect(backends.count == 20)
        #expect(backends.allSatisfy { $0 >= 1 && $0 <= limit }, "backends seen: \(backends)")

        let after = pool.statistics
        #expect(after.open <= limit)
        #expect(after.idle == after.open, "every connection should be back and idle")
        #expect(after.waiting == 0)

        await pool.close()
        #expect(pool.statistics.open == 0)
        let admin = try await Self.database.connect()
        try await eventually(60, "the pool's backends to disconnect after close()") {
            try await backendCount(applicationName: applicationName, admin: admin) == 0
        }
        await admin.close()
    }

    @Test("the pool opens up to maxConnections connections at once")
    func opensUpToTheLimit() async throws {
        let applicationName = uniqueName("pool_fill")
        let limit = 4
        let pool = try await makePool(maxConnections: limit, applicationName: applicationName)
        let barrier = Barrier(count: limit)
        let pids = Recorder<Int>()
        // Each caller holds its connection until all four are inside: this only finishes if the pool really
        // lends four connections at the same time.
        try await within(60, "four callers holding four connections together") {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<limit {
                    group.addTask {
                        try await pool.withConnection { connection in
                            await pids.append(try await connection.query("SELECT pg_backend_pid()").first?.int(0) ?? -1)
                            await barrier.arrive()
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
        #expect(Set(await pids.items).count == limit)
        #expect(pool.statistics.open == limit)
        #expect(pool.statistics.idle == limit)
        let admin = try await Self.database.connect()
        #expect(try await backendCount(applicationName: applicationName, admin: admin) == limit)
        await admin.close()
        await pool.close()
    }

    @Test("idle connections are reused rather than reopened")
    func reuse() async throws {
        let pool = try await makePool(maxConnections: 3)
        var pids = Set<Int>()
        for _ in 0..<10 {
            pids.insert(
                try await pool.withConnection { try await $0.query("SELECT pg_backend_pid()").first?.int(0) ?? -1 })
        }
        #expect(pids.count == 1)
        #expect(pool.statistics.open == 1)
        // A body that throws still hands the connection back.
        struct Oops: Error {}
        await #expect(throws: Oops.self) { try await pool.withConnection { _ in throw Oops() } }
        #expect(pool.statistics.idle == 1)
        await pool.close()
    }

    @Test("waiters are served first come, first served")
    func fairness() async throws {
        let pool = try await makePool(maxConnections: 1)
        let holder = try await HeldConnection.hold(pool)
        let order = Recorder<Int>()
        var waiters: [Task<Void, any Error>] = []
        for index in 0..<6 {
            waiters.append(
                Task {
                    try await pool.withConnection { connection in
                        await order.append(index)
                        try await connection.query("SELECT $1::int", [index])
                    }
                })
            // The next waiter is started only once this one is in line, so the arrival order is known.
            try await eventually(60, "waiter \(index) to queue") { pool.statistics.waiting == index + 1 }
        }
        #expect(pool.statistics.open == 1)
        try await holder.finish()
        for waiter in waiters {
            try await within(60, "a queued waiter to be served") { try await waiter.value }
        }
        #expect(await order.items == Array(0..<6))
        #expect(pool.statistics.waiting == 0)
        #expect(pool.statistics.open == 1)
        await pool.close()
    }

    @Test("a caller that waits past acquireTimeout gets poolTimeout and leaves the line")
    func acquireTimeout() async throws {
        let pool = try await makePool(maxConnections: 1, acquireTimeout: .milliseconds(300))
        let holder = try await HeldConnection.hold(pool)
        let start = ContinuousClock.now
        let error = await expectPostgresError {
            try await within(60, "acquire with a 300 ms timeout") { try await pool.withConnection { _ in } }
        }
        let waited = seconds(since: start)
        #expect(error?.kind == .poolTimeout)
        #expect(error?.isConnectionProblem == false)
        #expect(waited >= 0.25, "gave up after \(waited) s, before the timeout")
        #expect(pool.statistics.waiting == 0, "the timed-out waiter must leave the line")

        // Two more time out independently while the connection is still held.
        async let first = expectPostgresError { try await pool.withConnection { _ in } }
        async let second = expectPostgresError { try await pool.withConnection { _ in } }
        #expect(await first?.kind == .poolTimeout)
        #expect(await second?.kind == .poolTimeout)
        #expect(pool.statistics.waiting == 0)

        // The connection the timed-out waiters never got goes back to the pool and serves the next caller.
        try await holder.finish()
        #expect(pool.statistics.idle == 1)
        #expect(try await pool.withConnection { try await $0.query("SELECT 1").first?.int(0) } == 1)
        #expect(pool.statistics.open == 1)
        await pool.close()
    }

    @Test("an acquireTimeout of zero fails a caller who would have to wait instead of queueing it for good")
    func zeroAcquireTimeout() async throws {
        let pool = try await makePool(maxConnections: 1, acquireTimeout: .zero)
        let holder = try await HeldConnection.hold(pool)
        for _ in 0..<20 {
            let error = await expectPostgresError {
                try await within(60, "acquire with a zero timeout") { try await pool.withConnection { _ in } }
            }
            #expect(error?.kind == .poolTimeout)
        }
        #expect(pool.statistics.waiting == 0)
        try await holder.finish()
        #expect(try await pool.withConnection { try await $0.query("SELECT 1").first?.int(0) } == 1)
        await pool.close()
    }

    @Test("cancelling a waiting caller removes it from the line")
    func cancelWaiter() async throws {
        let pool = try await makePool(maxConnections: 1)
        let holder = try await HeldConnection.hold(pool)
        let served = Recorder<String>()
        let cancelled = Task { try await pool.withConnection { _ in await served.append("cancelled") } }
        try await eventually(60, "the first waiter to queue") { pool.statistics.waiting == 1 }
        let next = Task { try await pool.withConnection { _ in await served.append("next") } }
        try await eventually(60, "the second waiter to queue") { pool.statistics.waiting == 2 }

        cancelled.cancel()
        await #expect(throws: CancellationError.self) {
            try await within(60, "a cancelled waiter to give up") { try await cancelled.value }
        }
        #expect(pool.statistics.waiting == 1)

        // The connection goes to the remaining waiter, not to the cancelled one.
        try await holder.finish()
        try await within(60, "the remaining waiter") { try await next.value }
        #expect(await served.items == ["next"])
        #expect(pool.statistics.waiting == 0)
        #expect(pool.statistics.open == 1)
        #expect(pool.statistics.idle == 1)
        await pool.close()
    }

    @Test("a caller already cancelled before it has to wait does not join the line")
    func alreadyCancelledCaller() async throws {
        let pool = try await makePool(maxConnections: 1, acquireTimeout: .seconds(60))
        let holder = try await HeldConnection.hold(pool)
        let caller = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            try await pool.withConnection { _ in }
        }
        // With a 60 s acquire timeout, only honouring the cancellation finishes this within the bound.
        await #expect(throws: CancellationError.self) {
            try await within(60, "an already-cancelled caller to give up") { try await caller.value }
        }
        #expect(pool.statistics.waiting == 0)
        try await holder.finish()
        #expect(pool.statistics.idle == 1)
        await pool.close()
    }

    @Test("close() fails every waiter with .closed and later calls too")
    func closeFailsWaiters() async throws {
        let applicationName = uniqueName("pool_close")
        let pool = try await makePool(maxConnections: 1, applicationName: applicationName)
        let holder = try await HeldConnection.hold(pool)
        var waiters: [Task<Void, any Error>] = []
        for index in 0..<3 {
            waiters.append(Task { try await pool.withConnection { _ in } })
            try await eventually(60, "waiter \(index) to queue") { pool.statistics.waiting == index + 1 }
        }
        await pool.close()
        for waiter in waiters {
            let error = await expectPostgresError {
                try await within(60, "a waiter to fail after close()") { try await waiter.value }
            }
            #expect(error?.kind == .closed)
        }
        #expect(pool.statistics.waiting == 0)

        // New callers are refused at once.
        let late = await expectPostgresError {
            try await within(60, "a call after close()") { try await pool.withConnection { _ in } }
        }
        #expect(late?.kind == .closed)

        // The lease that was out when the pool closed ends normally; its connection is then closed.
        try await holder.finish()
        #expect(pool.statistics.open == 0)
        #expect(pool.statistics.idle == 0)
        let admin = try await Self.database.connect()
        try await eventually(60, "the held connection to disconnect") {
            try await backendCount(applicationName: applicationName, admin: admin) == 0
        }
        await admin.close()
        await pool.close()  // a second close is harmless
    }
}
