/// An error from the libpq layer: a failed connection, a failed statement, or an exhausted pool.
///
/// Messages never contain a password: connection errors pass through ``ConnectionString/redact(_:)`` before they
/// are stored here.
public struct PGError: Error, Sendable, CustomStringConvertible {
    /// What went wrong, in broad strokes.
    public enum Kind: Sendable, Equatable {
        /// A connection could not be opened (bad URL, wrong password, unreachable host, timeout).
        case connectionFailed
        /// An open connection broke (server restart, `pg_terminate_backend`, network loss).
        case connectionLost
        /// The server rejected or failed a statement; ``PGError/sqlState`` says why.
        case statementFailed
        /// No connection became free within the pool's acquire timeout.
        case poolTimeout
        /// The pool or connection was closed.
        case closed
        /// A result's column could not be read as the Swift type asked for (see ``QueryResult/decode(_:)``).
        case decodingFailed
    }

    /// The broad category.
    public var kind: Kind
    /// The five-character SQLSTATE code from the server, when there is one (for example `23505`).
    public var sqlState: String?
    /// The primary message, safe to log.
    public var message: String
    /// The server's DETAIL field, when there is one.
    public var detail: String?
    /// The server's HINT field, when there is one.
    public var hint: String?

    /// Creates an error.
    public init(kind: Kind, sqlState: String? = nil, message: String, detail: String? = nil, hint: String? = nil) {
        self.kind = kind
        self.sqlState = sqlState
        self.message = message
        self.detail = detail
        self.hint = hint
    }

    /// True when the failure is about the connection rather than the statement, so the work may be retried on
    /// a fresh connection: connection classes `08`, operator intervention `57P01`–`57P03`, or a lost socket.
    public var isConnectionProblem: Bool {
        switch kind {
        case .connectionFailed, .connectionLost: return true
        case .poolTimeout, .closed, .decodingFailed: return false
        case .statementFailed:
            guard let sqlState else { return false }
            return sqlState.hasPrefix("08") || ["57P01", "57P02", "57P03"].contains(sqlState)
        }
    }

    /// A one-line description: kind, SQLSTATE and message, plus detail and hint when present.
    public var description: String {
        var text = "PostgreSQL \(kind)"
        if let sqlState { text += " [\(sqlState)]" }
        text += ": \(message)"
        if let detail, !detail.isEmpty { text += " (detail: \(detail))" }
        if let hint, !hint.isEmpty { text += " (hint: \(hint))" }
        return text
    }
}
