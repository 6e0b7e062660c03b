/// A value that can be sent as a bound statement parameter, in PostgreSQL's text format.
///
/// Every value reaches the server as a parameter (`$1`, `$2`, …), never spliced into SQL text.
public protocol PostgresParameter: Sendable {
    /// The text form of the value, or `nil` for SQL `NULL`.
    var postgresText: String? { get }
}

extension String: PostgresParameter {
    public var postgresText: String? { self }
}

extension Int: PostgresParameter {
    public var postgresText: String? { String(self) }
}

extension Int32: PostgresParameter {
    public var postgresText: String? { String(self) }
}

extension Int64: PostgresParameter {
    public var postgresText: String? { String(self) }
}

extension Bool: PostgresParameter {
    public var postgresText: String? { self ? "true" : "false" }
}

extension Double: PostgresParameter {
    public var postgresText: String? { String(self) }
}

extension Optional: PostgresParameter where Wrapped: PostgresParameter {
    public var postgresText: String? { self?.postgresText }
}

/// An explicit SQL `NULL` parameter, for when no Swift type is at hand.
public struct PostgresNull: PostgresParameter {
    /// Creates a `NULL`.
    public init() {}
    public var postgresText: String? { nil }
}
