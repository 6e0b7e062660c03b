/// A one-dimensional `text[]` parameter, sent as a bound value in PostgreSQL's array literal format.
///
/// Every element is double-quoted with backslashes and quotes escaped, so any string (commas, braces, quotes,
/// unicode) arrives intact; `nil` elements become SQL `NULL`. Cast it in SQL: `$1::text[]`.
public struct PGTextArray: PGParameter {
    /// The elements.
    public var elements: [String?]

    /// Creates an array parameter.
    public init(_ elements: [String?]) {
        self.elements = elements
    }

    /// The array literal: `{"a","b",NULL}`.
    public var postgresText: String? {
        var text = "{"
        for (index, element) in elements.enumerated() {
            if index > 0 { text += "," }
            guard let element else {
                text += "NULL"
                continue
            }
            text += "\""
            for character in element.unicodeScalars {
                if character == "\"" || character == "\\" { text += "\\" }
                text.unicodeScalars.append(character)
            }
            text += "\""
        }
        return text + "}"
    }
}
