/// A value that can be sent as a bound statement parameter, in PostgreSQL's text format.
///
/// Every value reaches the server as a parameter (`$1`, `$2`, …), never spliced into SQL text.
public protocol PGParameter: Sendable {
    /// The text form of the value, or `nil` for SQL `NULL`.
    var postgresText: String? { get }
}

/// A string, sent as it is.
extension String: PGParameter {
    /// The string itself.
    public var postgresText: String? { self }
}

/// An integer, sent in decimal.
extension Int: PGParameter {
    /// The integer in decimal.
    public var postgresText: String? { String(self) }
}

/// A 32-bit integer, sent in decimal.
extension Int32: PGParameter {
    /// The integer in decimal.
    public var postgresText: String? { String(self) }
}

/// A 64-bit integer, sent in decimal.
extension Int64: PGParameter {
    /// The integer in decimal.
    public var postgresText: String? { String(self) }
}

/// A boolean, sent as `true` or `false`.
extension Bool: PGParameter {
    /// `true` or `false`.
    public var postgresText: String? { self ? "true" : "false" }
}

/// A floating-point number, sent in the shortest decimal form that reads back as the same number.
extension Double: PGParameter {
    /// The number as Swift prints it.
    public var postgresText: String? { String(self) }
}

/// An optional value: SQL `NULL` when nil.
extension Optional: PGParameter where Wrapped: PGParameter {
    /// The wrapped value's text, or nil (SQL `NULL`) when there is none.
    public var postgresText: String? { self?.postgresText }
}

/// An explicit SQL `NULL` parameter, for when no Swift type is at hand.
public struct PGNull: PGParameter {
    /// Creates a `NULL`.
    public init() {}
    /// Always nil: SQL `NULL`.
    public var postgresText: String? { nil }
}
