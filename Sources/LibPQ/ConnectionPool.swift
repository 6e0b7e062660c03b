import Logging
import Synchronization

/// A bounded pool of ``PGConnection``s with fair (first come, first served) waiters and an acquire timeout.
///
/// Connections open lazily up to `maxConnections`. A caller that finds none free waits in line; when the
/// wait passes `acquireTimeout` it gets ``PGError/Kind/poolTimeout`` rather than hanging. A connection
/// that broke during its lease is closed and its slot handed to the next waiter, which opens a fresh one.
public final class ConnectionPool: Sendable {
    /// What a waiter is handed: a free connection, or the right to open a new one.
    private enum Grant: Sendable {
        case connection(PGConnection)
        case openSlot
    }

    private struct Waiter {
        var id: Int
        var continuation: CheckedContinuation<Grant, any Error>
        var timeout: Task<Void, Never>?
    }

    private struct State {
        var idle: [PGConnection] = []
        /// Open connections plus those being opened.
        var slotsInUse = 0
        var waiters: [Waiter] = []
        var nextWaiterID = 0
        var closed = false
    }

    /// How connections are opened.
    public let configuration: PGConfiguration
    /// The most connections open at once.
    public let maxConnections: Int
    /// How long a caller waits for a free connection before failing.
    public let acquireTimeout: Duration
    private let logger: Logger
    private let state = Mutex(State())

    /// Creates a pool; no connection opens until first use.
    public init(
        configuration: PGConfiguration, maxConnections: Int, acquireTimeout: Duration = .seconds(30), logger: Logger
    ) {
        precondition(maxConnections > 0, "a pool needs at least one connection")
        self.configuration = configuration
        self.maxConnections = maxConnections
        self.acquireTimeout = acquireTimeout
        self.logger = logger
    }

    /// Leases a connection for the duration of `body`, then returns it (or discards it if it broke).
    @discardableResult
    public func withConnection<Result>(
        isolation: isolated (any Actor)? = #isolation,
        _ body: (PGConnection) async throws -> sending Result
    ) async throws -> sending Result {
        let connection = try await acquire()
        do {
            let result = try await body(connection)
            await release(connection)
            return result
        } catch {
            await release(connection)
            throw error
        }
    }

    /// Runs `body` inside `BEGIN` … `COMMIT` on one leased connection, rolling back if it throws.
    @discardableResult
    public func withTransaction<Result>(
        isolation: isolated (any Actor)? = #isolation,
        _ body: (PGConnection) async throws -> sending Result
    ) async throws -> sending Result {
        try await withConnection { connection in
            try await connection.execute("BEGIN")
            do {
                let result = try await body(connection)
                try await connection.execute("COMMIT")
                return result
            } catch {
                if await connection.inTransaction, await !connection.isBroken {
                    try? await connection.execute("ROLLBACK")
                }
                throw error
            }
        }
    }

    /// Closes idle connections and fails every waiter; later calls get ``PGError/Kind/closed``.
    public func close() async {
        let (idle, waiters) = state.withLock { state -> ([PGConnection], [Waiter]) in
            state.closed = true
            let result = (state.idle, state.waiters)
            state.slotsInUse -= state.idle.count
            state.idle = []
            state.waiters = []
            return result
        }
        for waiter in waiters {
            waiter.timeout?.cancel()
            waiter.continuation.resume(throwing: PGError(kind: .closed, message: "the connection pool was closed"))
        }
        for connection in idle { await connection.close() }
    }

    /// Numbers for tests and diagnostics: open (or opening) connections, idle ones, and waiters in line.
    package var statistics: (open: Int, idle: Int, waiting: Int) {
        state.withLock { ($0.slotsInUse, $0.idle.count, $0.waiters.count) }
    }

    // MARK: - Leasing

    private func acquire() async throws -> PGConnection {
        enum Immediate {
            case connection(PGConnection)
            case openSlot, wait, closed
        }
        let immediate: Immediate = state.withLock { state in
            if state.closed { return .closed }
            // Waiters already in line go first: a newcomer may not overtake them.
            if state.waiters.isEmpty, let connection = state.idle.popLast() { return .connection(connection) }
            if state.waiters.isEmpty, state.slotsInUse < maxConnections {
                state.slotsInUse += 1
                return .openSlot
            }
            return .wait
        }
        switch immediate {
        case .closed: throw PGError(kind: .closed, message: "the connection pool was closed")
        case .connection(let connection): return connection
        case .openSlot: return try await open()
        case .wait:
            switch try await waitInLine() {
            case .connection(let connection): return connection
            case .openSlot: return try await open()
            }
        }
    }

    private func open() async throws -> PGConnection {
        do {
            return try await PGConnection.connect(configuration)
        } catch {
            // The slot was never filled: give it to the next waiter, who will try to open one itself.
            freeSlot()
            throw error
        }
    }

    private func waitInLine() async throws -> Grant {
        let id = state.withLock { state -> Int in
            state.nextWaiterID += 1
            return state.nextWaiterID
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Grant, any Error>) in
                let timeout = Task { [acquireTimeout] in
                    try? await Task.sleep(for: acquireTimeout)
                    guard !Task.isCancelled else { return }
                    self.failWaiter(
                        id,
                        with: PGError(
                            kind: .poolTimeout,
                            message:
                                "no database connection became free within \(acquireTimeout) (pool of \(self.maxConnections)); raise the pool size or shorten transactions"
                        ))
                }
                enum Admission {
                    case queued, closed, cancelled
                    case granted(Grant)
                }
                let admitted: Admission = state.withLock { state in
                    if state.closed { return .closed }
                    // A task cancelled before it got here ran its cancellation handler while it was not yet
                    // in line (so the handler found nothing to remove); checked under the lock, so a later
                    // cancellation finds it queued instead.
                    if Task.isCancelled { return .cancelled }
                    // Something may have freed up between the first look and now.
                    if state.waiters.isEmpty, let connection = state.idle.popLast() {
                        return .granted(.connection(connection))
                    }
                    if state.waiters.isEmpty, state.slotsInUse < maxConnections {
                        state.slotsInUse += 1
                        return .granted(.openSlot)
                    }
                    state.waiters.append(Waiter(id: id, continuation: continuation, timeout: timeout))
                    return .queued
                }
                switch admitted {
                case .queued: break
                case .closed:
                    timeout.cancel()
                    continuation.resume(throwing: PGError(kind: .closed, message: "the connection pool was closed"))
                case .cancelled:
                    timeout.cancel()
                    continuation.resume(throwing: CancellationError())
                case .granted(let grant):
                    timeout.cancel()
                    continuation.resume(returning: grant)
                }
            }
        } onCancel: {
            failWaiter(id, with: CancellationError())
        }
    }

    private func failWaiter(_ id: Int, with error: any Error) {
        let waiter: Waiter? = state.withLock { state in
            guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
            return state.waiters.remove(at: index)
        }
        guard let waiter else { return }
        waiter.timeout?.cancel()
        waiter.continuation.resume(throwing: error)
    }

    private func release(_ connection: PGConnection) async {
        guard connection.isReusable else {
            logger.debug("discarding a broken database connection")
            await connection.close()
            freeSlot()
            return
        }
        let next: Waiter? = state.withLock { state in
            if state.closed { return nil }
            if state.waiters.isEmpty {
                state.idle.append(connection)
                return nil
            }
            return state.waiters.removeFirst()
        }
        if let next {
            next.timeout?.cancel()
            next.continuation.resume(returning: .connection(connection))
        } else if state.withLock({ $0.closed }) {
            await connection.close()
            freeSlot()
        }
    }

    /// Gives up one slot; if someone waits, the slot goes straight to them as a right to open a connection.
    private func freeSlot() {
        let next: Waiter? = state.withLock { state in
            if !state.closed, !state.waiters.isEmpty { return state.waiters.removeFirst() }
            state.slotsInUse -= 1
            return nil
        }
        if let next {
            next.timeout?.cancel()
            next.continuation.resume(returning: .openSlot)
        }
    }
}
