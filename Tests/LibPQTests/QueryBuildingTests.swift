import LibPQ
import Testing

/// The interpolated query type and typed row decoding, without a server.
@Suite("Interpolated queries and typed rows")
struct QueryBuildingTests {
    @Test("values become $n parameters in order; identifiers are quoted; constant fragments go in as written")
    func interpolation() {
        let schema = "My \"Odd\" Schema"
        let id = "x'); DROP TABLE t;--"
        let limit = 5
        let query: PGQuery = """
            SELECT a FROM \(identifier: schema).t WHERE id = \(id) AND n < \(limit) AND at < \(fragment: "now()") OR id = \(id)
            """
        #expect(query.sql == #"SELECT a FROM "My ""Odd"" Schema".t WHERE id = $1 AND n < $2 AND at < now() OR id = $3"#)
        #expect(query.parameters.map(\.postgresText) == [id, "5", id])
    }

    @Test("the text of one call site stays the same whatever the values, so prepared statements are reused")
    func constantText() {
        func lookup(_ id: String?) -> PGQuery { "SELECT 1 FROM t WHERE id = \(id)" }
        #expect(lookup("a").sql == lookup(nil).sql)
        #expect(lookup(nil).parameters.map(\.postgresText) == [nil])
    }

    @Test("a piece built the same way goes in with its placeholders renumbered; quoted text is left alone")
    func composition() {
        let partition: String? = "p-1"
        let inPartition: PGQuery = partition.map { " AND key = \($0) AND note <> '$1'" } ?? ""
        let query: PGQuery = "SELECT 1 FROM t WHERE queue = \("q")\(inPartition) LIMIT \(5)"
        #expect(query.sql == "SELECT 1 FROM t WHERE queue = $1 AND key = $2 AND note <> '$1' LIMIT $3")
        #expect(query.parameters.map(\.postgresText) == ["q", "p-1", "5"])
        let none: PGQuery = Optional<String>.none.map { " AND key = \($0)" } ?? ""
        let plain: PGQuery = "SELECT 1 FROM t WHERE queue = \("q")\(none) LIMIT \(5)"
        #expect(plain.sql == "SELECT 1 FROM t WHERE queue = $1 LIMIT $2")
    }

    @Test("rows decode as tuples by position, NULL as nil for optionals")
    func decoding() throws {
        let result = QueryResult(
            columns: ["id", "attempts", "owner", "done"],
            rows: [
                .init(values: ["w1", "2", nil, "t"]),
                .init(values: ["w2", "10", "tok", "f"]),
            ], affectedRows: 0)
        let rows = try result.decode(String.self, Int.self, String?.self, Bool.self)
        #expect(rows.count == 2)
        #expect(rows[0].0 == "w1" && rows[0].1 == 2 && rows[0].2 == nil && rows[0].3 == true)
        #expect(rows[1].0 == "w2" && rows[1].1 == 10 && rows[1].2 == "tok" && rows[1].3 == false)
        let first = try #require(try result.decodeFirst(String.self, Int64.self))
        #expect(first.0 == "w1" && first.1 == 2)
        #expect(try QueryResult(columns: [], rows: [], affectedRows: 0).decodeFirst(String.self) == nil)
    }

    @Test("a mismatch names the column, its name and the type expected")
    func mismatches() {
        let result = QueryResult(columns: ["id", "attempts"], rows: [.init(values: [nil, "many"])], affectedRows: 0)
        #expect(throws: PGError.self) { try result.decode(String.self) }
        do {
            _ = try result.decode(String?.self, Int.self)
            Issue.record("decoded 'many' as Int")
        } catch let error as PGError {
            #expect(error.kind == .decodingFailed)
            #expect(error.message.contains("column 1 (attempts)") && error.message.contains("Int"), "\(error)")
        } catch {
            Issue.record("unexpected \(error)")
        }
        do {
            _ = try result.decode(String?.self, String.self, String.self)
            Issue.record("decoded a column the row does not have")
        } catch let error as PGError {
            #expect(error.message.contains("column 2") && error.message.contains("only 2 columns"), "\(error)")
        } catch {
            Issue.record("unexpected \(error)")
        }
    }
}
