import Foundation

/// A database connection string (a `postgresql://` URL or a libpq `key=value` string) that never shows its
/// password.
///
/// `description` and every error built from it are redacted, so the value can be logged safely.
public struct ConnectionString: Sendable, CustomStringConvertible {
    /// The connection string exactly as given; pass it to libpq only.
    public let rawValue: String

    /// Wraps a connection string. Nothing is validated here: libpq parses it when connecting, and its complaints
    /// are redacted too.
    public init(_ rawValue: String) {
        self.rawValue = rawValue
    }

    /// The string with any password replaced by `***`.
    public var description: String { redacted }

    /// The string with any password replaced by `***`.
    public var redacted: String { Self.redactPasswords(in: rawValue) }

    /// Removes every trace of this connection string's password from `text`: the literal password (raw and
    /// percent-decoded) and any `user:password@` or `password=` fragment.
    public func redact(_ text: String) -> String {
        var result = text
        for secret in passwords where !secret.isEmpty {
            result = result.replacingOccurrences(of: secret, with: "***")
        }
        return Self.redactPasswords(in: result)
    }

    /// The password as written and percent-decoded, wherever the string holds one.
    private var passwords: [String] {
        var found: [String] = []
        if let range = Self.userInfoPasswordRange(in: rawValue) {
            let raw = String(rawValue[range])
            found.append(raw)
            if let decoded = raw.removingPercentEncoding, decoded != raw { found.append(decoded) }
        }
        for value in Self.keywordPasswords(in: rawValue) {
            found.append(value)
            if let decoded = value.removingPercentEncoding, decoded != value { found.append(decoded) }
            let unescaped = Self.unescapingBackslashes(value)
            if unescaped != value { found.append(unescaped) }
        }
        return found
    }

    // `password=` comes in two forms that end differently, so each has its own pattern (group 1 is kept, group 2
    // is the value). Both also catch `sslpassword=`.
    /// In a URL query (after `?` or `&`) the value is percent-encoded and ends at `&`, `#` or whitespace.
    private static let queryPasswordPattern = #"([?&](?:ssl)?password=)([^&#\s]*)"#
    /// In key=value form a value is quoted, or runs to whitespace with backslash escapes; `&` is an ordinary
    /// character there, so stopping at it would show the rest of such a password.
    private static let keywordPasswordPattern =
        #"((?<![?&])(?<![?&]ssl)password\s*=\s*)('(?:[^'\\]|\\.)*'|(?:\\.|[^\s\\])*)"#

    /// Redacts `scheme://user:password@` and `password=value` (key-value form or URL query) patterns.
    static func redactPasswords(in text: String) -> String {
        var result = text
        // user:password@ inside any URL-looking fragment, up to the last "@" of the authority: libpq wants an "@"
        // in a password percent-encoded, but stopping at a raw one would show the rest of the password.
        if let regex = try? NSRegularExpression(
            pattern: #"(postgres(?:ql)?://[^:/@\s]*:)[^/\s]*@"#, options: [.caseInsensitive])
        {
            let range = NSRange(result.startIndex..., in: result)
            result = regex.stringByReplacingMatches(in: result, range: range, withTemplate: "$1***@")
        }
        // password=... in URL queries and key=value strings; a quoted value may hold spaces.
        for pattern in [queryPasswordPattern, keywordPasswordPattern] {
            if let regex = try? NSRegularExpression(pattern: pattern, options: [.caseInsensitive]) {
                let range = NSRange(result.startIndex..., in: result)
                result = regex.stringByReplacingMatches(in: result, range: range, withTemplate: "$1***")
            }
        }
        return result
    }

    private static func userInfoPasswordRange(in text: String) -> Range<String.Index>? {
        guard let schemeEnd = text.range(of: "://") else { return nil }
        let rest = text[schemeEnd.upperBound...]
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        guard let at = authority.lastIndex(of: "@") else { return nil }
        let userInfo = authority[..<at]
        guard let colon = userInfo.firstIndex(of: ":") else { return nil }
        return userInfo.index(after: colon)..<userInfo.endIndex
    }

    private static func keywordPasswords(in text: String) -> [String] {
        [queryPasswordPattern, keywordPasswordPattern].flatMap { pattern -> [String] in
            guard let regex = try? NSRegularExpression(pattern: pattern, options: [.caseInsensitive]) else { return [] }
            let range = NSRange(text.startIndex..., in: text)
            return regex.matches(in: text, range: range).compactMap { match in
                guard let valueRange = Range(match.range(at: 2), in: text) else { return nil }
                var value = String(text[valueRange])
                if value.hasPrefix("'"), value.hasSuffix("'"), value.count >= 2 {
                    value = String(value.dropFirst().dropLast())
                }
                return value.isEmpty ? nil : value
            }
        }
    }

    /// A key=value value as libpq reads it: `\x` stands for `x`.
    private static func unescapingBackslashes(_ value: String) -> String {
        var result = ""
        var escaping = false
        for character in value {
            if !escaping, character == "\\" {
                escaping = true
                continue
            }
            result.append(character)
            escaping = false
        }
        return result
    }
}
