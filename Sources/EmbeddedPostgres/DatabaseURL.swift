import Foundation

/// String surgery on `postgresql://` URLs.
///
/// Done by hand rather than with `URLComponents` because libpq URLs may hold forms Foundation rejects,
/// such as several hosts (`host1:5432,host2:5432`) or an empty host with `?host=/socket/dir`.
public enum DatabaseURL {
    /// The URL of database `database` on a cluster listening on 127.0.0.1:`port` with trust auth.
    static func embedded(port: Int, database: String) -> String {
        "postgresql://postgres@127.0.0.1:\(port)/\(encodePathComponent(database))"
    }

    /// The connection string `url` pointed at the database `database` instead, on the same server.
    ///
    /// For a `postgresql://` URL the database (the path) is replaced; scheme, user, password, hosts, query and
    /// fragment are kept byte for byte. A libpq `key=value` string gets a `dbname` at its end, which libpq takes
    /// over any earlier one.
    /// - Throws: ``EmbeddedPostgresError/Kind/invalidURL`` for anything else.
    public static func replacingDatabase(in url: String, with database: String) throws -> String {
        guard let schemeEnd = url.range(of: "://") else {
            if url.contains("=") { return url + " dbname=" + quotedKeywordValue(database) }
            throw EmbeddedPostgresError(
                .invalidURL,
                """
                "\(redactingPassword(url))" is not a PostgreSQL connection string; expected \
                postgresql://user:password@host:port/database or host=… dbname=… (check DATABASE_URL).
                """)
        }
        let afterScheme = url[schemeEnd.upperBound...]
        // The authority ends at the first "/", "?" or "#"; a password containing those must already be
        // percent-encoded, as libpq itself requires.
        let authorityEnd = afterScheme.firstIndex { "/?#".contains($0) } ?? url.endIndex
        let rest = url[authorityEnd...]
        let pathEnd = rest.firstIndex { "?#".contains($0) } ?? url.endIndex
        return String(url[..<authorityEnd]) + "/" + encodePathComponent(database) + String(url[pathEnd...])
    }

    /// `url` with any password shown as `***`, for error messages.
    static func redactingPassword(_ url: String) -> String {
        guard let schemeEnd = url.range(of: "://") else { return url }
        let afterScheme = url[schemeEnd.upperBound...]
        let authorityEnd = afterScheme.firstIndex { "/?#".contains($0) } ?? url.endIndex
        let authority = url[schemeEnd.upperBound..<authorityEnd]
        guard let at = authority.lastIndex(of: "@"),
            let colon = authority[..<at].firstIndex(of: ":")
        else { return url }
        return String(url[..<authority.index(after: colon)]) + "***" + String(url[at...])
    }

    /// A value for a libpq `key=value` string: single-quoted, with `\` and `'` escaped by a backslash.
    static func quotedKeywordValue(_ value: String) -> String {
        "'" + value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'") + "'"
    }

    /// Percent-encodes a database name for the URL path (libpq decodes it again).
    static func encodePathComponent(_ name: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return name.addingPercentEncoding(withAllowedCharacters: allowed) ?? name
    }
}

/// Names and quoting for databases this module creates.
public enum DatabaseName {
    /// A new name "prefix_xxxxxxxxxxxx": the prefix lower-cased and reduced to [a-z0-9_], then 12 random
    /// characters from [a-z0-9]. Kept well under PostgreSQL's 63-byte identifier limit.
    public static func unique(prefix: String) -> String {
        var cleaned = String(
            prefix.lowercased().unicodeScalars.map { scalar -> Character in
                let isAllowed = ("a"..."z").contains(scalar) || ("0"..."9").contains(scalar) || scalar == "_"
                return isAllowed ? Character(scalar) : "_"
            }.prefix(40))
        if cleaned.isEmpty { cleaned = "db" }
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789")
        let suffix = String((0..<12).map { _ in alphabet.randomElement()! })
        return cleaned + "_" + suffix
    }

    /// `name` as a quoted SQL identifier, so it is taken literally whatever it holds.
    static func quotedIdentifier(_ name: String) -> String {
        "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
