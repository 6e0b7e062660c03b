/// The rows a statement returned, decoded from libpq's text format. `NULL` stays `nil`.
public struct QueryResult: Sendable {
    /// Column names in result order.
    public let columns: [String]
    /// Each row's values in column order; `nil` is SQL `NULL`.
    public let rows: [Row]
    /// Rows affected by an `INSERT`, `UPDATE` or `DELETE` (the command tag's count), else 0.
    public let affectedRows: Int

    /// Creates a result; used by the connection and by tests.
    public init(columns: [String], rows: [Row], affectedRows: Int) {
        self.columns = columns
        self.rows = rows
        self.affectedRows = affectedRows
    }

    /// The first row, if any.
    public var first: Row? { rows.first }

    /// One row of a result.
    public struct Row: Sendable {
        /// The raw text values; `nil` is SQL `NULL`.
        public let values: [String?]

        /// Creates a row.
        public init(values: [String?]) {
            self.values = values
        }

        /// The text of column `index`, or `nil` for `NULL`.
        public subscript(index: Int) -> String? { values[index] }

        /// Column `index` as a string; `nil` for `NULL`.
        public func string(_ index: Int) -> String? { values[index] }

        /// Column `index` as an integer; `nil` for `NULL` or text that is not an integer.
        public func int(_ index: Int) -> Int? { values[index].flatMap { Int($0) } }

        /// Column `index` as a 64-bit integer; `nil` for `NULL` or text that is not an integer.
        public func int64(_ index: Int) -> Int64? { values[index].flatMap { Int64($0) } }

        /// Column `index` as a boolean (`t`/`f` in PostgreSQL's text format); `nil` for `NULL`.
        public func bool(_ index: Int) -> Bool? {
            guard let text = values[index] else { return nil }
            return text == "t" || text == "true"
        }

        /// Column `index` as a floating-point number; `nil` for `NULL` or text that is not a number.
        public func double(_ index: Int) -> Double? { values[index].flatMap { Double($0) } }
    }
}
