/// A statement and its parameters, built by string interpolation so that the two cannot drift apart.
///
/// ```swift
/// let query: PGQuery = "SELECT status FROM \(identifier: schema).workflow_status WHERE workflow_uuid = \(id)"
/// // sql: SELECT status FROM "dbos".workflow_status WHERE workflow_uuid = $1     parameters: [id]
/// ```
///
/// - An interpolated value becomes the next `$n` and its bound parameter: a value never enters the SQL text.
/// - `\(identifier:)` quotes a schema, table or column name into the text (an identifier cannot be a parameter).
/// - `\(fragment:)` puts a constant piece of SQL, written in the program, into the text.
///
/// The text of a call site stays the same from call to call (only its parameters change), so the connection's
/// prepared-statement cache still serves it.
public struct PGQuery: Sendable, ExpressibleByStringInterpolation {
    /// The SQL text, with `$1`, `$2`, … where the values go.
    public let sql: String
    /// The values, in `$n` order.
    public let parameters: [any PGParameter]

    /// A query from text that has no values in it.
    public init(stringLiteral sql: String) {
        self.sql = sql
        self.parameters = []
    }

    /// A query from an interpolation.
    public init(stringInterpolation: StringInterpolation) {
        self.sql = stringInterpolation.sql
        self.parameters = stringInterpolation.parameters
    }

    /// Collects the text and the values of an interpolated query.
    public struct StringInterpolation: StringInterpolationProtocol {
        var sql = ""
        var parameters: [any PGParameter] = []

        /// Reserves room for the literal text.
        public init(literalCapacity: Int, interpolationCount: Int) {
            sql.reserveCapacity(literalCapacity + interpolationCount * 3)
            parameters.reserveCapacity(interpolationCount)
        }

        /// Text written in the program.
        public mutating func appendLiteral(_ literal: String) {
            sql += literal
        }

        /// A value: bound as the next parameter.
        public mutating func appendInterpolation(_ value: some PGParameter) {
            parameters.append(value)
            sql += "$\(parameters.count)"
        }

        /// An optional value: bound as the next parameter, `NULL` when nil.
        public mutating func appendInterpolation<Value: PGParameter>(_ value: Value?) {
            parameters.append(value)
            sql += "$\(parameters.count)"
        }

        /// A piece of a statement built the same way (a condition used by some call sites only): its text goes in
        /// with its `$n` renumbered to follow the values before it, and its values are bound in order.
        public mutating func appendInterpolation(_ part: PGQuery) {
            sql += part.renumbered(after: parameters.count)
            parameters += part.parameters
        }

        /// A name of a schema, table or column, quoted.
        public mutating func appendInterpolation(identifier name: String) {
            sql += SQLIdentifier.quote(name)
        }

        /// A constant piece of SQL written in the program (a `StaticString`, so it cannot come from data).
        public mutating func appendInterpolation(fragment: StaticString) {
            sql += fragment.description
        }
    }
}

extension PGQuery {
    /// The text with every placeholder `$k` (outside quoted strings and identifiers) written `$(k + offset)`.
    func renumbered(after offset: Int) -> String {
        guard offset > 0, !parameters.isEmpty else { return sql }
        var out = ""
        var quote: Character?
        var index = sql.startIndex
        while index < sql.endIndex {
            let character = sql[index]
            if let open = quote {
                if character == open { quote = nil }
                out.append(character)
                index = sql.index(after: index)
                continue
            }
            if character == "'" || character == "\"" {
                quote = character
            } else if character == "$" {
                let digits = sql[sql.index(after: index)...].prefix { $0.isASCII && $0.isNumber }
                if let number = Int(digits) {
                    out += "$\(number + offset)"
                    index = digits.endIndex
                    continue
                }
            }
            out.append(character)
            index = sql.index(after: index)
        }
        return out
    }
}

extension PGConnection {
    /// Runs an interpolated query.
    @discardableResult
    public func query(_ query: PGQuery) throws -> QueryResult {
        try self.query(query.sql, query.parameters)
    }
}
