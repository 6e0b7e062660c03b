import CLibPQ
import Foundation
import Synchronization

/// One libpq connection, running on its own thread.
///
/// The actor's executor is a dedicated thread (`ThreadExecutor`), so blocking libpq calls never occupy
/// Swift's cooperative pool. A connection is used by one caller at a time (the pool leases it out), but the actor
/// keeps it safe even if that rule were broken.
///
/// When the server drops an idle connection (restart, `pg_terminate_backend`), the next statement notices before
/// sending and reconnects; a connection that breaks mid-statement reports ``PGError/Kind/connectionLost``
/// and `isBroken` becomes true, so the pool discards it.
///
/// The `PG` prefix (as in libpq's own `PGconn`) keeps this module's names apart from PostgresNIO's
/// (`PostgresConnection`, `PostgresError`, …), which many services import in the same target.
public actor PGConnection {
    private let executor: ThreadExecutor
    private let configuration: PGConfiguration
    private var handle: OpaquePointer?
    private var preparedStatements: [String: String] = [:]

    /// True once the connection has failed in a way that makes it unusable; the pool then replaces it.
    package private(set) var isBroken = false

    /// Whether the pool may hand this connection to the next caller: not broken and not left inside a
    /// transaction block. Kept in an atomic so the pool can read it without a hop to the connection's thread.
    private let reusable = Atomic<Bool>(true)

    /// The actor runs on its own thread.
    public nonisolated var unownedExecutor: UnownedSerialExecutor {
        executor.asUnownedSerialExecutor()
    }

    /// Set by the notice receiver when the server sends FATAL or PANIC while no statement runs: it is closing
    /// this session (`pg_terminate_backend`, shutdown). That message arrives before the socket's EOF, so it is
    /// the reliable sign that an idle connection is gone. Read and written only on the connection's thread.
    private let serverClosedSession: UnsafeMutablePointer<Bool>

    private init(configuration: PGConfiguration, executor: ThreadExecutor) {
        self.configuration = configuration
        self.executor = executor
        serverClosedSession = .allocate(capacity: 1)
        serverClosedSession.initialize(to: false)
    }

    /// Opens a connection, waiting at most the configuration's connect timeout.
    public static func connect(_ configuration: PGConfiguration) async throws -> PGConnection {
        let connection = PGConnection(configuration: configuration, executor: ThreadExecutor(name: "durable-pg"))
        do {
            try await connection.open()
        } catch {
            await connection.close()
            throw error
        }
        return connection
    }

    // Runs on the connection thread, where the handle lives.
    isolated deinit {
        if let handle { PQfinish(handle) }
        serverClosedSession.deallocate()
        executor.stop()
    }

    private func open() throws {
        let parameters = configuration.libpqParameters
        let keywordStorage = parameters.map { strdup($0.0) }
        let valueStorage = parameters.map { strdup($0.1) }
        defer {
            keywordStorage.forEach { free($0) }
            valueStorage.forEach { free($0) }
        }
        var keywords: [UnsafePointer<CChar>?] = keywordStorage.map { UnsafePointer($0) } + [nil]
        var values: [UnsafePointer<CChar>?] = valueStorage.map { UnsafePointer($0) } + [nil]
        let connection = keywords.withUnsafeMutableBufferPointer { keywordBuffer in
            values.withUnsafeMutableBufferPointer { valueBuffer in
                PQconnectdbParams(keywordBuffer.baseAddress, valueBuffer.baseAddress, 1)
            }
        }
        guard let connection else {
            throw PGError(kind: .connectionFailed, message: "libpq could not allocate a connection")
        }
        guard PQstatus(connection) == CONNECTION_OK else {
            let message = configuration.connectionString.redact(Self.errorMessage(of: connection))
            PQfinish(connection)
            throw PGError(
                kind: .connectionFailed,
                message: "could not connect to \(configuration.connectionString.redacted): \(message)"
            )
        }
        // libpq prints server notices (NOTICE, WARNING) to stderr by default; a library must not print.
        // A receiver rather than a processor so that it can also note a FATAL sent to an idle session.
        PQsetNoticeReceiver(
            connection,
            { flag, result in
                guard let flag, let result, let severity = PQresultErrorField(result, Int32(UInt8(ascii: "V"))) else {
                    return
                }
                let text = String(cString: severity)  // PG_DIAG_SEVERITY_NONLOCALIZED
                if text == "FATAL" || text == "PANIC" { flag.assumingMemoryBound(to: Bool.self).pointee = true }
            }, UnsafeMutableRawPointer(serverClosedSession))
        handle = connection
    }

    /// Closes the connection. Safe to call twice; later statements fail with ``PGError/Kind/closed``.
    public func close() {
        if let handle {
            PQfinish(handle)
            self.handle = nil
        }
        markBroken()
        // The thread is not stopped here but in deinit: once it has exited, any later call on this actor (a
        // second close(), a query, the isolated deinit itself) would be enqueued on a dead thread and hang.
    }

    /// Runs one statement with bound parameters and returns its rows.
    ///
    /// - Parameters:
    ///   - sql: one SQL statement using `$1`, `$2`, … for values.
    ///   - parameters: the values, sent separately from the SQL text. Required (pass `[]` for none), so that a
    ///     string literal with interpolations, `query("… \(value)")`, is always a ``PGQuery`` whose values are
    ///     bound, never text spliced into SQL by accident.
    @discardableResult
    public func query(_ sql: String, _ parameters: [any PGParameter]) throws -> QueryResult {
        let texts = parameters.map(\.postgresText)
        try Self.rejectNUL(in: sql, texts)
        let connection = try usableHandle()
        let result: OpaquePointer?
        if configuration.usePreparedStatements {
            let name = try preparedName(for: sql, parameterCount: texts.count, on: connection)
            result = Self.withCStrings(texts) { pointers in
                PQexecPrepared(connection, name, Int32(pointers.count), pointers.baseAddress, nil, nil, 0)
            }
        } else {
            result = Self.withCStrings(texts) { pointers in
                PQexecParams(connection, sql, Int32(pointers.count), nil, pointers.baseAddress, nil, nil, 0)
            }
        }
        return try consume(result, on: connection)
    }

    /// Runs a script of one or more statements without parameters (schema migrations, `BEGIN`, `COMMIT`).
    /// Never pass user data here: use ``query(_:_:)`` and parameters for values.
    public func execute(_ script: String) throws {
        try Self.rejectNUL(in: script, [])
        let connection = try usableHandle()
        let result = PQexec(connection, script)
        _ = try consume(result, on: connection)
    }

    /// True when the connection is healthy and idle outside any transaction, so another caller may use it.
    package nonisolated var isReusable: Bool { reusable.load(ordering: .acquiring) }

    /// True when the server session sits in an open or failed transaction block.
    package var inTransaction: Bool {
        guard let handle else { return false }
        let status = PQtransactionStatus(handle)
        return status == PQTRANS_INTRANS || status == PQTRANS_INERROR
    }

    // MARK: - Internals

    /// libpq takes SQL and text parameters as C strings, so a NUL byte would silently cut the value short
    /// (and PostgreSQL text cannot hold one anyway): refuse it, as the server refuses 0x00 in text.
    private static func rejectNUL(in sql: String, _ texts: [String?]) throws {
        if sql.utf8.contains(0) {
            throw PGError(
                kind: .statementFailed, sqlState: "22021",
                message: "the SQL text contains a NUL byte, which libpq cannot send")
        }
        if let index = texts.firstIndex(where: { $0?.utf8.contains(0) == true }) {
            throw PGError(
                kind: .statementFailed, sqlState: "22021",
                message: "parameter $\(index + 1) contains a NUL byte, which PostgreSQL text cannot hold")
        }
    }

    /// The handle for the listening loop, which must not reconnect behind the caller's back (a reconnect
    /// silently drops `LISTEN` subscriptions).
    func rawHandleForListening() -> OpaquePointer? {
        isBroken ? nil : handle
    }

    func markListenerBroken() {
        markBroken()
    }

    /// The live handle, reconnecting first if the server dropped this connection while it sat idle. Reconnecting
    /// is only safe outside a transaction block, and that is the only place an idle drop can be noticed.
    private func usableHandle() throws -> OpaquePointer {
        guard let handle, !isBroken else {
            throw PGError(kind: .closed, message: "the connection is closed")
        }
        // Read before looking at the socket: once libpq has seen the connection drop it reports PQTRANS_UNKNOWN,
        // which would hide that the session died inside a (possibly failed) transaction block.
        let wasIdle = PQtransactionStatus(handle) == PQTRANS_IDLE
        if !readPendingInput(handle) {
            guard wasIdle else {
                markBroken()
                throw PGError(
                    kind: .connectionLost, message: "the connection to the server was lost inside a transaction")
            }
            PQreset(handle)
            serverClosedSession.pointee = false
            preparedStatements.removeAll()
            guard PQstatus(handle) == CONNECTION_OK else {
                let message = configuration.connectionString.redact(Self.errorMessage(of: handle))
                markBroken()
                throw PGError(
                    kind: .connectionLost,
                    message: "the connection was lost and could not be re-established: \(message)")
            }
        }
        return handle
    }

    /// Reads what the server sent while the connection sat idle and returns whether the session is still alive.
    /// A terminated backend sends a FATAL message and then closes the socket; the message may be all that has
    /// arrived yet, and even with both there libpq needs one read for the message and another to see EOF. So
    /// this reads while the socket is readable, and lets libpq parse what came (PQisBusy), which hands a FATAL
    /// to the notice receiver.
    private func readPendingInput(_ handle: OpaquePointer) -> Bool {
        for _ in 0..<8 {
            guard PQstatus(handle) == CONNECTION_OK, !serverClosedSession.pointee else { return false }
            let socket = PQsocket(handle)
            guard socket >= 0 else { return false }
            var descriptor = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, 0) > 0 else { return true }
            if PQconsumeInput(handle) == 0 { return false }
            _ = PQisBusy(handle)
        }
        return PQstatus(handle) == CONNECTION_OK && !serverClosedSession.pointee
    }

    private func preparedName(for sql: String, parameterCount: Int, on connection: OpaquePointer) throws -> String {
        if let name = preparedStatements[sql] { return name }
        let name = "durable_\(preparedStatements.count + 1)"
        let result = PQprepare(connection, name, sql, Int32(parameterCount), nil)
        _ = try consume(result, on: connection)
        preparedStatements[sql] = name
        return name
    }

    private func consume(_ result: OpaquePointer?, on connection: OpaquePointer) throws -> QueryResult {
        defer { noteTransactionState(connection) }
        guard let result else {
            let message = configuration.connectionString.redact(Self.errorMessage(of: connection))
            markBrokenIfDisconnected(connection)
            throw PGError(kind: isBroken ? .connectionLost : .statementFailed, message: message)
        }
        defer { PQclear(result) }
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY:
            return Self.decode(result)
        default:
            let error = Self.error(from: result, connection: connection, redactingWith: configuration.connectionString)
            markBrokenIfDisconnected(connection)
            if isBroken, error.sqlState == nil {
                throw PGError(kind: .connectionLost, message: error.message)
            }
            throw error
        }
    }

    private func markBrokenIfDisconnected(_ connection: OpaquePointer) {
        if PQstatus(connection) != CONNECTION_OK { markBroken() }
    }

    private func markBroken() {
        isBroken = true
        reusable.store(false, ordering: .releasing)
    }

    /// Records after each statement whether the session is idle again (outside a transaction block).
    private func noteTransactionState(_ connection: OpaquePointer) {
        reusable.store(!isBroken && PQtransactionStatus(connection) == PQTRANS_IDLE, ordering: .releasing)
    }

    private static func decode(_ result: OpaquePointer) -> QueryResult {
        let columnCount = Int(PQnfields(result))
        let rowCount = Int(PQntuples(result))
        var columns: [String] = []
        columns.reserveCapacity(columnCount)
        for column in 0..<columnCount {
            columns.append(String(cString: PQfname(result, Int32(column))))
        }
        var rows: [QueryResult.Row] = []
        rows.reserveCapacity(rowCount)
        for row in 0..<rowCount {
            var values: [String?] = []
            values.reserveCapacity(columnCount)
            for column in 0..<columnCount {
                if PQgetisnull(result, Int32(row), Int32(column)) == 1 {
                    values.append(nil)
                } else {
                    let length = Int(PQgetlength(result, Int32(row), Int32(column)))
                    let bytes = UnsafeRawPointer(PQgetvalue(result, Int32(row), Int32(column)))!
                    values.append(String(decoding: UnsafeRawBufferPointer(start: bytes, count: length), as: UTF8.self))
                }
            }
            rows.append(QueryResult.Row(values: values))
        }
        let affected = Int(String(cString: PQcmdTuples(result))) ?? 0
        return QueryResult(columns: columns, rows: rows, affectedRows: affected)
    }

    private static func error(
        from result: OpaquePointer, connection: OpaquePointer, redactingWith secret: ConnectionString
    ) -> PGError {
        func field(_ code: Int32) -> String? {
            guard let value = PQresultErrorField(result, code) else { return nil }
            return String(cString: value)
        }
        let primary = field(Int32(UInt8(ascii: "M"))) ?? errorMessage(of: connection)
        return PGError(
            kind: .statementFailed,
            sqlState: field(Int32(UInt8(ascii: "C"))),  // PG_DIAG_SQLSTATE
            message: secret.redact(primary),
            detail: field(Int32(UInt8(ascii: "D"))).map(secret.redact),
            hint: field(Int32(UInt8(ascii: "H"))).map(secret.redact)
        )
    }

    private static func errorMessage(of connection: OpaquePointer) -> String {
        guard let text = PQerrorMessage(connection) else { return "unknown libpq error" }
        return String(cString: text).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Calls `body` with C strings for `values` (`NULL` pointers for `nil`), valid only during the call.
    private static func withCStrings<R>(_ values: [String?], _ body: (UnsafeBufferPointer<UnsafePointer<CChar>?>) -> R)
        -> R
    {
        let storage: [UnsafeMutablePointer<CChar>?] = values.map { $0.map { strdup($0) } ?? nil }
        defer { storage.forEach { free($0) } }
        let pointers = storage.map { $0.map { UnsafePointer($0) } }
        return pointers.withUnsafeBufferPointer(body)
    }
}
