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
        }
        return found
    }

    /// Redacts `scheme://user:password@` and `password=value` (key-value form or URL query) patterns.
    static func redactPasswords(in text: String) -> String {
        var result = text
        // user:password@ inside any URL-looking fragment.
        if let regex = try? NSRegularExpression(pattern: #"(postgres(?:ql)?://[^:/@\s]*:)[^@\s]*@"#, options: [.caseInsensitive]) {
            let range = NSRange(result.startIndex..., in: result)
            result = regex.stringByReplacingMatches(in: result, range: range, withTemplate: "$1***@")
        }
        // password=... in key=value strings and URL queries; a quoted value may hold spaces.
        if let regex = try? NSRegularExpression(pattern: #"(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&]*)"#, options: [.caseInsensitive]) {
            let range = NSRange(result.startIndex..., in: result)
            result = regex.stringByReplacingMatches(in: result, range: range, withTemplate: "$1***")
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
        guard let regex = try? NSRegularExpression(pattern: #"password\s*=\s*('(?:[^'\\]|\\.)*'|[^\s&]+)"#, options: [.caseInsensitive]) else {
            return []
        }
        let range = NSRange(text.startIndex..., in: text)
        return regex.matches(in: text, range: range).compactMap { match in
            guard let valueRange = Range(match.range(at: 1), in: text) else { return nil }
            var value = String(text[valueRange])
            if value.hasPrefix("'"), value.hasSuffix("'"), value.count >= 2 { value = String(value.dropFirst().dropLast()) }
            return value
        }
    }
}
