/// A Swift type a column of a result can be read as, from PostgreSQL's text format.
public protocol PGDecodable: Sendable {
    /// The value of `text` (never `NULL`: `Optional` handles that), or nil when the text does not fit the type.
    static func decode(pgText text: String) -> Self?
    /// Whether SQL `NULL` is a value of this type (only `Optional`'s).
    static var acceptsNull: Bool { get }
    /// The value SQL `NULL` stands for, where ``acceptsNull``.
    static var null: Self? { get }
}

extension PGDecodable {
    /// False: SQL `NULL` is not a value of this type, so reading it fails.
    public static var acceptsNull: Bool { false }
    /// None: SQL `NULL` stands for no value of this type.
    public static var null: Self? { nil }
}

/// A column read as text, exactly as the server sent it.
extension String: PGDecodable {
    /// The text itself.
    public static func decode(pgText text: String) -> String? { text }
}

/// A column read as an integer (`smallint`, `integer`, `bigint` within range).
extension Int: PGDecodable {
    /// The integer the text spells, or nil when it is not one.
    public static func decode(pgText text: String) -> Int? { Int(text) }
}

/// A column read as a 64-bit integer (`bigint`).
extension Int64: PGDecodable {
    /// The integer the text spells, or nil when it is not one.
    public static func decode(pgText text: String) -> Int64? { Int64(text) }
}

/// A column read as a 32-bit integer (`integer`).
extension Int32: PGDecodable {
    /// The integer the text spells, or nil when it is not one or does not fit.
    public static func decode(pgText text: String) -> Int32? { Int32(text) }
}

/// A column read as a floating-point number (`double precision`, `real`, `numeric` within range).
extension Double: PGDecodable {
    /// The number the text spells, or nil when it is not one.
    public static func decode(pgText text: String) -> Double? { Double(text) }
}

/// A column read as a boolean.
extension Bool: PGDecodable {
    /// True for `t` or `true`, false for `f` or `false` (PostgreSQL's text forms), nil for anything else.
    public static func decode(pgText text: String) -> Bool? {
        switch text {
        case "t", "true": return true
        case "f", "false": return false
        default: return nil
        }
    }
}

/// A column that may be SQL `NULL`: read as nil then, and as the wrapped type otherwise.
extension Optional: PGDecodable where Wrapped: PGDecodable {
    /// The wrapped type's value of `text`, or nil when the text does not fit that type.
    public static func decode(pgText text: String) -> Wrapped?? { Wrapped.decode(pgText: text).map { .some($0) } }
    /// True: SQL `NULL` is a value of an optional type.
    public static var acceptsNull: Bool { true }
    /// `NULL` reads as nil.
    public static var null: Wrapped?? { .some(.none) }
}

extension QueryResult {
    /// Every row decoded as a tuple of Swift types, by column position:
    /// `try result.decode(String.self, Int?.self)` reads columns 0 and 1.
    ///
    /// - Throws: ``PGError`` naming the column (its position and name) and the expected type, when a column is
    ///   `NULL` for a non-optional type, its text does not fit the type, or the row has fewer columns.
    public func decode<each Column: PGDecodable>(_ types: repeat (each Column).Type) throws -> [(repeat each Column)] {
        try rows.map { row in try row.decode(repeat each types, columns: columns) }
    }

    /// The first row decoded (see ``decode(_:)``), or nil when there is none.
    public func decodeFirst<each Column: PGDecodable>(_ types: repeat (each Column).Type) throws -> (
        repeat each Column
    )? {
        guard let row = first else { return nil }
        let decoded: (repeat each Column) = try row.decode(repeat each types, columns: columns)
        return .some(decoded)
    }
}

extension QueryResult.Row {
    /// This row decoded as a tuple of Swift types, by column position (see ``QueryResult/decode(_:)``).
    public func decode<each Column: PGDecodable>(_ types: repeat (each Column).Type, columns: [String] = []) throws -> (
        repeat each Column
    ) {
        var index = 0
        func next<Value: PGDecodable>(_ type: Value.Type) throws -> Value {
            defer { index += 1 }
            let name = index < columns.count ? " (\(columns[index]))" : ""
            guard index < values.count else {
                throw PGError(
                    kind: .decodingFailed,
                    message:
                        "column \(index)\(name) was expected as \(Value.self), but the row has only \(values.count) columns"
                )
            }
            guard let text = values[index] else {
                if Value.acceptsNull, let null = Value.null { return null }
                throw PGError(
                    kind: .decodingFailed, message: "column \(index)\(name) is NULL, but \(Value.self) was expected")
            }
            guard let value = Value.decode(pgText: text) else {
                throw PGError(kind: .decodingFailed, message: "column \(index)\(name) does not read as \(Value.self)")
            }
            return value
        }
        return (repeat try next((each Column).self))
    }
}
