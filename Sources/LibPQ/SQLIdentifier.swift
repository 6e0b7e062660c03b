/// Quoting for SQL identifiers (schema, table and column names), which cannot be bound parameters.
public enum SQLIdentifier {
    /// The identifier in double quotes with embedded double quotes doubled, so any name (a keyword, mixed case,
    /// spaces, quotes) is taken literally by the server.
    public static func quote(_ name: String) -> String {
        "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
