import Foundation
import LibPQ
import TestSupport
import Testing

/// Bound parameters and decoding: every value travels as a parameter and comes back byte for byte.
/// Each test runs with prepared statements on and off, the two paths through ``PGConnection/query(_:_:)``.
@Suite("Parameters and decoding")
struct ParameterTests {
    static let database = SuiteDatabase(prefix: "libpq_params")

    private func withConnection<T>(prepared: Bool, _ body: (PGConnection) async throws -> T) async throws -> T {
        let connection = try await Self.database.connect(usePreparedStatements: prepared)
        do {
            let result = try await body(connection)
            await connection.close()
            return result
        } catch {
            await connection.close()
            throw error
        }
    }

    @Test("text, integers, booleans and doubles round trip", arguments: [true, false])
    func scalarsRoundTrip(prepared: Bool) async throws {
        try await withConnection(prepared: prepared) { connection in
            let row = try #require(
                try await connection.query(
                    "SELECT $1::text, $2::int8, $3::int8, $4::bool, $5::bool, $6::float8, $7::float8, $8::int4, $9::int8",
                    ["hello", Int.max, Int.min, true, false, Double.pi, -1.5e300, Int32.min, Int64.max]
                ).first)
            #expect(row.string(0) == "hello")
            #expect(row.int(1) == Int.max)
            #expect(row.int(2) == Int.min)
            #expect(row.bool(3) == true)
            #expect(row.bool(4) == false)
            #expect(row.double(5) == Double.pi, "float8 text output must round trip exactly")
            #expect(row.double(6) == -1.5e300)
            #expect(row.int(7) == Int(Int32.min))
            #expect(row.int64(8) == Int64.max)
        }
    }

    @Test("NULL and the empty string stay distinct", arguments: [true, false])
    func nullVersusEmptyString(prepared: Bool) async throws {
        try await withConnection(prepared: prepared) { connection in
            let nothing: String? = nil
            let rows = try await connection.query(
                "SELECT $1::text IS NULL, $1::text, $2::text IS NULL, $2::text, $3::int IS NULL, $3::int",
                ["", nothing, PGNull()]
            ).rows
            let row = try #require(rows.first)
            #expect(row.bool(0) == false)
            #expect(row.string(1) == "")
            #expect(row.bool(2) == true)
            #expect(row.string(3) == nil)
            #expect(row.bool(4) == true)
            #expect(row.int(5) == nil)
            #expect(row.bool(5) == nil)
            #expect(row.double(5) == nil)

            // Decoding side: NULL columns are nil, empty text is "".
            let literal = try #require(try await connection.query("SELECT NULL::text, ''::text, NULL::int").first)
            #expect(literal.values.count == 3)
            #expect(literal[0] == nil)
            #expect(literal[1] == "")
            #expect(literal[2] == nil)
        }
    }

    @Test("unicode round trips byte for byte", arguments: [true, false])
    func unicodeRoundTrip(prepared: Bool) async throws {
        let samples = [
            "😀",
            "👩‍👩‍👧‍👦 family, 🇯🇵 flag, 👍🏽 skin tone",
            "漢字かなカナ한국어中文",
            "e\u{0301} (e + combining acute) vs \u{00E9} (precomposed)",
            "a\u{0308}\u{0323}\u{0301}",  // stacked combining marks
            "Ω≈ç√∫˜µ≤≥÷ and \u{200B}zero width\u{FEFF}",
            "\u{10FFFF} highest scalar",
        ]
        try await withConnection(prepared: prepared) { connection in
            for sample in samples {
                let row = try #require(
                    try await connection.query(
                        "SELECT $1::text, octet_length($1::text), char_length($1::text)", [sample]
                    ).first)
                // Compare bytes: Swift's == treats canonically equivalent strings as equal, which would hide
                // a normalisation along the way.
                #expect(Array(try #require(row.string(0)).utf8) == Array(sample.utf8), "\(sample)")
                #expect(row.int(1) == sample.utf8.count, "octet_length of \(sample)")
                #expect(row.int(2) == sample.unicodeScalars.count, "char_length of \(sample)")
            }
            // Stored and read back through a table too, and found by equality.
            let table = uniqueName("unicode")
            try await connection.execute("CREATE TABLE \(table) (id int PRIMARY KEY, value text NOT NULL)")
            for (index, sample) in samples.enumerated() {
                try await connection.query("INSERT INTO \(table) VALUES ($1, $2)", [index, sample])
            }
            for (index, sample) in samples.enumerated() {
                let found = try await connection.query("SELECT id FROM \(table) WHERE value = $1", [sample])
                #expect(found.rows.map { $0.int(0) } == [index], "\(sample)")
            }
            // The decomposed and precomposed forms are different strings to the server.
            let distinct = try #require(
                try await connection.query("SELECT $1::text = $2::text", ["e\u{0301}", "\u{00E9}"]).first)
            #expect(distinct.bool(0) == false)
        }
    }

    @Test("a 10 MB value round trips", arguments: [true, false])
    func largeValue(prepared: Bool) async throws {
        // 10 MiB of text with a little variety so a truncation or shift would show.
        var big = String(repeating: "0123456789abcdefghijklmnopqrstuvwxyz-😀-", count: 10 * 1024 * 1024 / 42)
        big += "END"
        let expectedBytes = big.utf8.count
        #expect(expectedBytes >= 10_000_000)
        try await withConnection(prepared: prepared) { connection in
            let row = try #require(
                try await connection.query(
                    "SELECT octet_length($1::text), right($1::text, 6), $1::text", [big]
                ).first)
            #expect(row.int(0) == expectedBytes)
            #expect(row.string(1) == "-😀-END")
            let echoed = try #require(row.string(2))
            #expect(echoed.utf8.count == expectedBytes)
            #expect(echoed.utf8.elementsEqual(big.utf8))

            let table = uniqueName("big")
            try await connection.execute("CREATE TABLE \(table) (value text)")
            let inserted = try await connection.query("INSERT INTO \(table) VALUES ($1)", [big])
            #expect(inserted.affectedRows == 1)
            let stored = try #require(try await connection.query("SELECT value FROM \(table)", []).first?.string(0))
            #expect(stored.utf8.elementsEqual(big.utf8))
        }
    }

    @Test("SQL-looking text is data, never SQL", arguments: [true, false])
    func quotesAndPlaceholdersAreValues(prepared: Bool) async throws {
        let table = uniqueName("quotes")
        let samples = [
            "it's", "''", "'; DROP TABLE \(table); --", "\"double\"", "back\\slash", "\\\\", "\\x00", "E'\\n'",
            "$1", "$2::text", "$$dollar quoted$$", "?", "%s %d", "{a,b}", "NULL", "null", "line\nbreak\ttab\r",
            "trailing space ", " ", "--", "/* comment */",
        ]
        try await withConnection(prepared: prepared) { connection in
            try await connection.execute("CREATE TABLE \(table) (id int, value text)")
            for (index, sample) in samples.enumerated() {
                let echoed = try await connection.query("SELECT $1::text, $2::int", [sample, index]).first
                #expect(echoed?.string(0).map { Array($0.utf8) } == Array(sample.utf8), "\(sample)")
                #expect(echoed?.int(1) == index)
                try await connection.query("INSERT INTO \(table) VALUES ($2, $1)", [sample, index])
            }
            let stored = try await connection.query("SELECT value FROM \(table) ORDER BY id", []).rows.map {
                $0.string(0)
            }
            #expect(stored == samples.map { Optional($0) })
        }
    }

    @Test("PGTextArray survives commas, braces, quotes, backslashes, NULLs and unicode", arguments: [true, false])
    func textArrayRoundTrip(prepared: Bool) async throws {
        let elements: [String?] = [
            "plain", "a,b", "{braces}", "}", "{", "\"quoted\"", "\"", "back\\slash", "\\", "end\\", nil, "NULL",
            "null", "", " ", "  padded  ", "it's", "😀漢字", "e\u{0301}", "new\nline", "tab\t", "$1", nil,
        ]
        try await withConnection(prepared: prepared) { connection in
            let rows = try await connection.query(
                "SELECT value FROM unnest($1::text[]) WITH ORDINALITY AS t(value, position) ORDER BY position",
                [PGTextArray(elements)]
            ).rows
            let decoded = rows.map { $0.string(0).map { Array($0.utf8) } }
            #expect(decoded == elements.map { $0.map { Array($0.utf8) } })

            let shape = try #require(
                try await connection.query(
                    "SELECT cardinality($1::text[]), array_position($1::text[], NULL) IS NOT NULL, $1::text[] @> ARRAY['a,b']",
                    [PGTextArray(elements)]
                ).first)
            #expect(shape.int(0) == elements.count)
            #expect(shape.bool(1) == true)
            #expect(shape.bool(2) == true)

            // Empty, all-NULL and single-element arrays.
            let empty = try #require(
                try await connection.query("SELECT cardinality($1::text[])", [PGTextArray([])]).first)
            #expect(empty.int(0) == 0)
            let nulls = try await connection.query("SELECT unnest($1::text[])", [PGTextArray([nil, nil])]).rows
            #expect(nulls.map { $0.string(0) } == [nil, nil])
            let single = try await connection.query("SELECT unnest($1::text[])", [PGTextArray(["x"])]).rows
            #expect(single.map { $0.string(0) } == ["x"])
        }
    }

    @Test("PGTextArray writes a quoted array literal")
    func textArrayLiteral() {
        #expect(PGTextArray([]).postgresText == "{}")
        #expect(PGTextArray(["a", nil, "NULL"]).postgresText == #"{"a",NULL,"NULL"}"#)
        #expect(PGTextArray([#"q"u\o"#]).postgresText == #"{"q\"u\\o"}"#)
        #expect(PGTextArray(["a,b", "{c}"]).postgresText == #"{"a,b","{c}"}"#)
    }

    /// libpq's text format cannot carry a NUL byte (values are C strings), and PostgreSQL text cannot hold one
    /// either. The only sane outcomes are an error or the exact value; silently sending a truncated value
    /// (here "before", dropping the rest) would corrupt data.
    @Test("a value with a NUL byte is rejected, never truncated", arguments: [true, false])
    func nulByte(prepared: Bool) async throws {
        try await withConnection(prepared: prepared) { connection in
            let table = uniqueName("nul")
            try await connection.execute("CREATE TABLE \(table) (value text)")
            for value in ["before\u{0}after", "\u{0}", "trailing\u{0}"] {
                do {
                    let row = try await connection.query("SELECT $1::text, octet_length($1::text)", [value]).first
                    #expect(
                        row?.string(0).map { Array($0.utf8) } == Array(value.utf8),
                        "a NUL-containing value must not arrive truncated")
                } catch let error as PGError {
                    #expect(error.kind == .statementFailed)
                    #expect(!error.isConnectionProblem)
                }
                do {
                    try await connection.query("INSERT INTO \(table) VALUES ($1)", [value])
                } catch let error as PGError {
                    #expect(error.kind == .statementFailed)
                }
                // Arrays go through the same path.
                do {
                    let rows = try await connection.query("SELECT unnest($1::text[])", [PGTextArray(["ok", value])])
                        .rows
                    #expect(rows.map { $0.string(0).map { Array($0.utf8) } } == [Array("ok".utf8), Array(value.utf8)])
                } catch let error as PGError {
                    #expect(error.kind == .statementFailed)
                }
            }
            // Nothing truncated was stored, and the connection is fine.
            let stored = try await connection.query("SELECT value FROM \(table)", []).rows.map { $0.string(0) }
            #expect(stored.allSatisfy { $0?.contains("\u{0}") ?? true }, "stored truncated values: \(stored)")
            #expect(try await connection.query("SELECT 1").first?.int(0) == 1)
            #expect(connection.isReusable)
        }
    }

    @Test("affectedRows counts inserted, updated and deleted rows", arguments: [true, false])
    func affectedRows(prepared: Bool) async throws {
        try await withConnection(prepared: prepared) { connection in
            let table = uniqueName("affected")
            try await connection.execute("CREATE TABLE \(table) (id int PRIMARY KEY, flag bool NOT NULL DEFAULT false)")
            #expect(
                try await connection.query("INSERT INTO \(table) (id) SELECT generate_series(1, $1::int)", [5])
                    .affectedRows == 5)
            #expect(try await connection.query("INSERT INTO \(table) (id) VALUES ($1)", [6]).affectedRows == 1)
            #expect(try await connection.query("UPDATE \(table) SET flag = true WHERE id <= $1", [3]).affectedRows == 3)
            #expect(
                try await connection.query("UPDATE \(table) SET flag = true WHERE id > $1", [100]).affectedRows == 0)
            #expect(
                try await connection.query(
                    "INSERT INTO \(table) (id) VALUES ($1), ($2) ON CONFLICT (id) DO NOTHING", [6, 7]
                ).affectedRows == 1)
            #expect(try await connection.query("DELETE FROM \(table) WHERE flag = $1", [false]).affectedRows == 4)
            let returning = try await connection.query("DELETE FROM \(table) RETURNING id", [])
            #expect(returning.affectedRows == 3)
            #expect(returning.rows.compactMap { $0.int(0) }.sorted() == [1, 2, 3])
            #expect(try await connection.query("CREATE TABLE \(table)_2 (x int)", []).affectedRows == 0)
        }
    }

    @Test("columns are named in result order")
    func columnNames() async throws {
        try await withConnection(prepared: true) { connection in
            let result = try await connection.query("SELECT 1 AS one, 'two' AS \"Two Words\", NULL AS nothing")
            #expect(result.columns == ["one", "Two Words", "nothing"])
            #expect(result.rows.count == 1)
            let none = try await connection.query("SELECT 1 AS x WHERE false")
            #expect(none.columns == ["x"])
            #expect(none.rows.isEmpty)
            #expect(none.first == nil)
        }
    }

    @Test("execute runs a multi-statement script as one implicit transaction")
    func multiStatementExecute() async throws {
        try await withConnection(prepared: true) { connection in
            let table = uniqueName("script")
            try await connection.execute(
                """
                CREATE TABLE \(table) (id int PRIMARY KEY);
                INSERT INTO \(table) VALUES (1);
                INSERT INTO \(table) VALUES (2);
                -- a comment, and an empty statement
                ;
                """)
            #expect(try await connection.query("SELECT count(*) FROM \(table)", []).first?.int(0) == 2)

            // A failure part-way through undoes the whole script (libpq sends it as one simple query).
            let error = await expectPostgresError {
                try await connection.execute(
                    "INSERT INTO \(table) VALUES (3); SELECT 1/0; INSERT INTO \(table) VALUES (4);")
            }
            #expect(error?.sqlState == "22012")
            #expect(try await connection.query("SELECT count(*) FROM \(table)", []).first?.int(0) == 2)
            #expect(connection.isReusable)

            // An empty script is fine.
            try await connection.execute("")
            try await connection.execute(";")
        }
    }

    @Test("the same statement text with different parameter values reuses its plan correctly")
    func preparedStatementReuse() async throws {
        try await withConnection(prepared: true) { connection in
            for value in 0..<50 {
                let row = try await connection.query("SELECT $1::int * 2, $2::text", [value, "v\(value)"]).first
                #expect(row?.int(0) == value * 2)
                #expect(row?.string(1) == "v\(value)")
            }
            // Statements that differ only in text get their own plans.
            #expect(try await connection.query("SELECT $1::int + 1", [1]).first?.int(0) == 2)
            #expect(try await connection.query("SELECT $1::int + 2", [1]).first?.int(0) == 3)
        }
    }
}
