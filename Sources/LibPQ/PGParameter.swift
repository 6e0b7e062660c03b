/// A value that can be sent as a bound statement parameter, in PostgreSQL's text format.
///
/// Every value reaches the server as a parameter (`$1`, `$2`, …), never spliced into SQL text.
public protocol PGParameter: Sendable {
    /// The text form of the value, or `nil` for SQL `NULL`.
    var postgresText: String? { get }
}

extension String: PGParameter {
    public var postgresText: String? { self }
}

extension Int: PGParameter {
    public var postgresText: String? { String(self) }
}

extension Int32: PGParameter {
    public var postgresText: String? { String(self) }
}

extension Int64: PGParameter {
    public var postgresText: String? { String(self) }
}

extension Bool: PGParameter {
    public var postgresText: String? { self ? "true" : "false" }
}

extension Double: PGParameter {
    public var postgresText: String? { String(self) }
}

extension Optional: PGParameter where Wrapped: PGParameter {
    public var postgresText: String? { self?.postgresText }
}

/// An explicit SQL `NULL` parameter, for when no Swift type is at hand.
public struct PGNull: PGParameter {
    /// Creates a `NULL`.
    public init() {}
    public var postgresText: String? { nil }
}
