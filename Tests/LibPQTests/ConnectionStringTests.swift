import LibPQ
import Testing

/// ``ConnectionString`` never shows a password: not in `description`/`redacted`, and not in text passed
/// through ``ConnectionString/redact(_:)``.
@Suite("ConnectionString redaction")
struct ConnectionStringTests {
    @Test(
        "URL userinfo password",
        arguments: [
            ("postgresql://alice:s3cret@db.example.com:5432/app", "postgresql://alice:***@db.example.com:5432/app"),
            (
                "postgres://alice:s3cret@db.example.com/app?sslmode=require",
                "postgres://alice:***@db.example.com/app?sslmode=require"
            ),
            ("POSTGRESQL://alice:s3cret@host/app", "POSTGRESQL://alice:***@host/app"),
            ("postgresql://:s3cret@host/app", "postgresql://:***@host/app"),
            ("postgresql://alice:s3cret@h1:5432,h2:5433/app", "postgresql://alice:***@h1:5432,h2:5433/app"),
        ])
    func urlUserInfo(raw: String, expected: String) {
        let connectionString = ConnectionString(raw)
        #expect(connectionString.redacted == expected)
        #expect(connectionString.description == expected)
        #expect(String(describing: connectionString) == expected)
        #expect("\(connectionString)" == expected)
        #expect(connectionString.rawValue == raw, "the raw value is kept for libpq")
    }

    @Test(
        "strings without a password are unchanged",
        arguments: [
            "postgresql://alice@host:5432/app",
            "postgresql://host/app",
            "postgresql:///app?host=/var/run/postgresql",
            "host=localhost user=alice dbname=app",
            "",
        ])
    func noPassword(raw: String) {
        #expect(ConnectionString(raw).redacted == raw)
        #expect(ConnectionString(raw).redact("some error about \(raw)") == "some error about \(raw)")
    }

    @Test(
        "key=value password, unquoted and quoted",
        arguments: [
            ("host=h user=u password=s3cret dbname=d", "host=h user=u password=*** dbname=d"),
            ("password=s3cret", "password=***"),
            ("host=h password = s3cret dbname=d", "host=h password = *** dbname=d"),
            ("host=h password='s3cret' dbname=d", "host=h password=*** dbname=d"),
            ("host=h password='s3 cr et' dbname=d", "host=h password=*** dbname=d"),
            (#"host=h password='s3\'cr et' dbname=d"#, "host=h password=*** dbname=d"),
            ("host=h PASSWORD=s3cret", "host=h PASSWORD=***"),
        ])
    func keywordForm(raw: String, expected: String) {
        let connectionString = ConnectionString(raw)
        #expect(connectionString.redacted == expected)
        #expect(!connectionString.description.contains("s3"))
    }

    @Test(
        "URL query password",
        arguments: [
            ("postgresql://host/app?password=s3cret", "postgresql://host/app?password=***"),
            (
                "postgresql://host/app?user=u&password=s3cret&sslmode=disable",
                "postgresql://host/app?user=u&password=***&sslmode=disable"
            ),
            ("postgresql://u:s3cret@host/app?password=s3cret", "postgresql://u:***@host/app?password=***"),
        ])
    func urlQuery(raw: String, expected: String) {
        #expect(ConnectionString(raw).redacted == expected)
    }

    @Test("percent-encoded passwords are hidden encoded and decoded")
    func percentEncoded() {
        let connectionString = ConnectionString("postgresql://u:p%40ss%3Aw0rd%20x@host/app")
        #expect(connectionString.redacted == "postgresql://u:***@host/app")
        let text = "libpq: bad password p@ss:w0rd x, raw p%40ss%3Aw0rd%20x"
        let redacted = connectionString.redact(text)
        #expect(!redacted.contains("p@ss:w0rd x"))
        #expect(!redacted.contains("p%40ss%3Aw0rd%20x"))
        #expect(!redacted.contains("w0rd"))
        #expect(redacted.hasPrefix("libpq: bad password "))

        let query = ConnectionString("postgresql://host/app?password=p%26ss%3Dw0rd")
        #expect(!query.redacted.contains("w0rd"))
        let queryText = query.redact("decoded p&ss=w0rd and raw p%26ss%3Dw0rd")
        #expect(!queryText.contains("w0rd"), "\(queryText)")
    }

    @Test("redact(_:) removes the literal password from arbitrary text")
    func redactArbitraryText() {
        let connectionString = ConnectionString("postgresql://alice:hunter2xyz@db/app")
        let text = "FATAL: password authentication failed for user \"alice\" (tried hunter2xyz)"
        let redacted = connectionString.redact(text)
        #expect(!redacted.contains("hunter2xyz"))
        #expect(redacted.contains("password authentication failed for user \"alice\""))

        // URL and keyword fragments inside text are redacted even when they hold another password.
        let other = connectionString.redact(
            "tried postgresql://bob:0therpw@db/app and host=db password=0therpw2 user=bob")
        #expect(!other.contains("0therpw"))
        #expect(other.contains("postgresql://bob:***@db/app"))
        #expect(other.contains("user=bob"))

        let keyword = ConnectionString("host=db password='quoted secret' user=alice")
        #expect(!keyword.redact("echo: quoted secret").contains("quoted secret"))
    }

    /// Forms libpq itself would reject or parse differently still must not leak any part of the password in
    /// logs, since the redacted string is exactly what goes into the "could not connect" message.
    @Test(
        "awkward passwords do not leak in part",
        arguments: [
            // An unencoded "@" (libpq wants it percent-encoded, but people write it).
            ("postgresql://u:p@ss-s3cret@host/app", "s3cret"),
            // "&" and "#" inside a key=value password (only a URL query ends a value at "&").
            ("host=h password=abc&s3cret user=u", "s3cret"),
            ("host=h password=abc#s3cret user=u", "s3cret"),
            // A backslash-escaped space inside an unquoted key=value password.
            (#"host=h password=abc\ s3cret user=u"#, "s3cret"),
            ("host=h sslpassword=abc&s3cret user=u", "s3cret"),
            ("postgresql://h/app?sslpassword=s3cret&user=u", "s3cret"),
        ])
    func awkwardPasswords(raw: String, secretPart: String) {
        let connectionString = ConnectionString(raw)
        #expect(!connectionString.redacted.contains(secretPart), "\(connectionString.redacted)")
        #expect(!connectionString.redact("error about \(raw)").contains(secretPart))
    }

    @Test("PGError's description shows kind, SQLSTATE, message, detail and hint")
    func errorDescription() {
        let error = PGError(
            kind: .statementFailed, sqlState: "23505", message: "duplicate key", detail: "Key (id)=(1) already exists.",
            hint: "use another id")
        #expect(
            error.description
                == "PostgreSQL statementFailed [23505]: duplicate key (detail: Key (id)=(1) already exists.) (hint: use another id)"
        )
        #expect(PGError(kind: .poolTimeout, message: "m").description == "PostgreSQL poolTimeout: m")
    }

    @Test(
        "isConnectionProblem by kind and SQLSTATE",
        arguments: [
            (PGError.Kind.connectionFailed, nil as String?, true),
            (.connectionLost, nil, true),
            (.poolTimeout, nil, false),
            (.closed, nil, false),
            (.statementFailed, nil, false),
            (.statementFailed, "08006", true),
            (.statementFailed, "08003", true),
            (.statementFailed, "57P01", true),
            (.statementFailed, "57P02", true),
            (.statementFailed, "57P03", true),
            (.statementFailed, "57014", false),  // query_canceled
            (.statementFailed, "23505", false),
            (.statementFailed, "40001", false),
        ])
    func connectionProblem(kind: PGError.Kind, sqlState: String?, expected: Bool) {
        #expect(PGError(kind: kind, sqlState: sqlState, message: "x").isConnectionProblem == expected)
    }
}
