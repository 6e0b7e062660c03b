import Foundation
import LibPQ
import TestSupport
import Testing

@testable import Durable

// Helpers of BadInputCatalogueTests: the catalogue of awkward strings, the workflows that carry them through
// every public entry point, a fingerprint of the system tables (to show a failed call wrote nothing and a
// successful one touched nothing else), and the check that a refusal is clear.

// MARK: - The catalogue

/// Strings that break naive code: SQL quoting, JSON escaping, Unicode normalisation, C strings, index limits.
enum Awkward: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case apostrophe
    case doubleQuotes
    case sqlInjection
    case cjkAndEmoji
    case combiningMarks
    case rightToLeft
    case nulByte
    /// 4 KB of a short repeated pattern: PostgreSQL compresses it inside index entries.
    case fourKilobytesRepeated
    /// 4 KB that does not compress: above PostgreSQL's btree entry limit (~2.7 KB) for an indexed column.
    case fourKilobytesRandom
    case oneMegabyte

    var testDescription: String { rawValue }

    var value: String {
        switch self {
        case .apostrophe: return "it's"
        case .doubleQuotes: return "\"quoted\""
        // Names the real table, so an injection would do visible harm that the fingerprint catches.
        case .sqlInjection: return "Robert'); DROP TABLE dbos.workflow_status;--"
        case .cjkAndEmoji: return "工作流-🚀"
        // Decomposed forms: Swift's == calls them equal to the precomposed ones, so round trips compare bytes.
        case .combiningMarks: return "Cafe\u{301} n\u{303} \u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467} a\u{20DD}"
        case .rightToLeft: return "\u{202E}txet\u{202C} שלום مرحبا"
        case .nulByte: return "before\0after"
        case .fourKilobytesRepeated: return AwkwardValues.fourKilobytesRepeated
        case .fourKilobytesRandom: return AwkwardValues.fourKilobytesRandom
        case .oneMegabyte: return AwkwardValues.oneMegabyte
        }
    }

    var containsNUL: Bool { self == .nulByte }
    /// Longer than the library's documented limit for IDs, names and keys (800 bytes), which keeps every
    /// indexed column within PostgreSQL's btree entry limit: refused before anything is sent.
    var longerThanTheLimit: Bool { value.utf8.count > 800 }
}

/// The long values, built once per process.
enum AwkwardValues {
    static let fourKilobytesRepeated: String = {
        // "ab'\"é" is 6 bytes; 682 of them and "abcd" make exactly 4096.
        let text = String(repeating: "ab'\"é", count: 682) + "abcd"
        precondition(text.utf8.count == 4096)
        return text
    }()
    static let fourKilobytesRandom = pseudoRandom(bytes: 4096, seed: 4)
    static let oneMegabyte = pseudoRandom(bytes: 1 << 20, seed: 1)

    /// Letters, digits and punctuation from a fixed-seed generator: reproducible, and pglz finds nothing to
    /// compress in it.
    static func pseudoRandom(bytes: Int, seed: UInt64) -> String {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~'\" ".utf8)
        var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        var out = [UInt8]()
        out.reserveCapacity(bytes)
        for _ in 0..<bytes {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            out.append(alphabet[Int((state >> 33) % UInt64(alphabet.count))])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Byte-for-byte equality: `==` on `String` treats canonically equivalent strings as equal. (memcmp, because
/// an element-wise loop over 16 MB takes a second in a debug build.)
func sameBytes(_ a: String?, _ b: String) -> Bool {
    guard var a else { return false }
    var b = b
    return a.withUTF8 { x in
        b.withUTF8 { y in x.count == y.count && (x.count == 0 || memcmp(x.baseAddress!, y.baseAddress!, x.count) == 0) }
    }
}

/// `unit` repeated up to `bytes` (a multiple of its size): big strings in a few large copies, not a
/// character-by-character loop.
func repeated(_ unit: String, toBytes bytes: Int) -> String {
    precondition(bytes % unit.utf8.count == 0)
    return String(repeating: unit, count: bytes / unit.utf8.count)
}

/// A short label of a possibly huge string, for failure messages.
func preview(_ text: String?) -> String {
    guard let text else { return "nil" }
    return text.utf8.count <= 600
        ? "\(text.debugDescription)" : "\(String(text.prefix(300)).debugDescription)… (\(text.utf8.count) bytes)"
}

// MARK: - Workflows

/// How a durable call inside a workflow went: the workflow catches the error so the test can read its code, and
/// then takes one more step to show the workflow itself carries on.
struct CatalogueOutcome: Codable, Sendable, Equatable {
    var code: String?
    var message: String?
    var sqlState: String?
    var after: Int

    static func of(_ ctx: WorkflowContext, _ body: () async throws -> Void) async throws -> CatalogueOutcome {
        var outcome = CatalogueOutcome(after: 0)
        do {
            try await body()
        } catch let error as DurableError {
            outcome.code = error.code.rawValue
            outcome.message = error.message
            outcome.sqlState = error.sqlState
        }
        outcome.after = try await ctx.step("after") { 1 }
        return outcome
    }

    /// The error the workflow caught, rebuilt for the refusal check.
    var error: DurableError? {
        code.map { DurableError(DurableError.Code(rawValue: $0), message ?? "", sqlState: sqlState) }
    }
}

/// Returns its own workflow ID, as a step saw it (the input is only there to be kept out of errors).
struct CatalogueIdentity: Workflow {
    static let name = "catalogue-identity"
    func run(_ ctx: WorkflowContext, _ input: String) async throws -> String {
        RunCounts.note("identity:\(ctx.workflowID)")
        return try await ctx.step("who-am-i") { ctx.workflowID }
    }
}

/// Returns its input.
struct CatalogueEcho: Workflow {
    static let name = "catalogue-echo"
    func run(_ ctx: WorkflowContext, _ text: String) async throws -> String { text }
}

struct CatalogueRefusal: Error, CustomStringConvertible {
    var description: String { "refused on purpose" }
}

/// Always fails, so it records an error outcome.
struct CatalogueThrowing: Workflow {
    static let name = "catalogue-throwing"
    func run(_ ctx: WorkflowContext, _ text: String) async throws -> String { throw CatalogueRefusal() }
}

/// Returns its input (an array, so an empty one is tried too) through a step.
struct CatalogueEchoArray: Workflow {
    static let name = "catalogue-echo-array"
    func run(_ ctx: WorkflowContext, _ items: [String]) async throws -> [String] {
        try await ctx.step("echo") { items }
    }
}

struct ReceiveInput: Codable, Sendable {
    var topic: String?
    var count: Int
    var timeoutMilliseconds: Int
}

/// Receives up to `count` messages on a topic; stops at the first timeout.
struct CatalogueReceiver: Workflow {
    static let name = "catalogue-receiver"
    func run(_ ctx: WorkflowContext, _ input: ReceiveInput) async throws -> [String] {
        var received: [String] = []
        for _ in 0..<input.count {
            guard
                let message = try await ctx.recv(
                    String.self, topic: input.topic, timeout: .milliseconds(input.timeoutMilliseconds))
            else { break }
            received.append(message)
        }
        return received
    }
}

struct SendInput: Codable, Sendable {
    var destination: String
    var topic: String?
    var message: String
}

/// Sends one message from inside a workflow.
struct CatalogueSender: Workflow {
    static let name = "catalogue-sender"
    func run(_ ctx: WorkflowContext, _ input: SendInput) async throws -> CatalogueOutcome {
        try await CatalogueOutcome.of(ctx) {
            try await ctx.send(to: input.destination, topic: input.topic, input.message)
        }
    }
}

struct KeyValue: Codable, Sendable {
    var key: String
    var value: String
}

/// Sets one event.
struct CatalogueEventSetter: Workflow {
    static let name = "catalogue-event-setter"
    func run(_ ctx: WorkflowContext, _ input: KeyValue) async throws -> CatalogueOutcome {
        try await CatalogueOutcome.of(ctx) { try await ctx.setEvent(input.key, input.value) }
    }
}

struct StreamWrite: Codable, Sendable {
    var key: String
    var values: [String]
}

/// Writes values to a stream and closes it.
struct CatalogueStreamWriter: Workflow {
    static let name = "catalogue-stream-writer"
    func run(_ ctx: WorkflowContext, _ input: StreamWrite) async throws -> CatalogueOutcome {
        try await CatalogueOutcome.of(ctx) {
            for value in input.values { try await ctx.writeStream(input.key, value) }
            try await ctx.closeStream(input.key)
        }
    }
}

/// Leaves a row in every table a workflow can write to, for the "nothing else was touched" checks.
struct CatalogueBystander: Workflow {
    static let name = "catalogue-bystander"
    func run(_ ctx: WorkflowContext, _ marker: String) async throws -> String {
        let stepped = try await ctx.step("step") { marker }
        try await ctx.setEvent("bystander", stepped)
        try await ctx.writeStream("bystander", stepped)
        try await ctx.closeStream("bystander")
        return stepped
    }
}

/// The name a `CatalogueNamed` workflow is registered under.
protocol CatalogueNameTag: Sendable {
    static var awkward: Awkward { get }
}

enum NameApostrophe: CatalogueNameTag { static let awkward = Awkward.apostrophe }
enum NameDoubleQuotes: CatalogueNameTag { static let awkward = Awkward.doubleQuotes }
enum NameSQLInjection: CatalogueNameTag { static let awkward = Awkward.sqlInjection }
enum NameCJKAndEmoji: CatalogueNameTag { static let awkward = Awkward.cjkAndEmoji }
enum NameCombiningMarks: CatalogueNameTag { static let awkward = Awkward.combiningMarks }
enum NameRightToLeft: CatalogueNameTag { static let awkward = Awkward.rightToLeft }
enum NameNULByte: CatalogueNameTag { static let awkward = Awkward.nulByte }
enum NameFourKilobytesRepeated: CatalogueNameTag { static let awkward = Awkward.fourKilobytesRepeated }
enum NameFourKilobytesRandom: CatalogueNameTag { static let awkward = Awkward.fourKilobytesRandom }
enum NameOneMegabyte: CatalogueNameTag { static let awkward = Awkward.oneMegabyte }

/// A workflow whose durable name is an awkward string (names are static, so one type per string). Holds at its
/// gate when asked, so a test can interrupt it and have another runtime recover it by that name.
struct CatalogueNamed<Tag: CatalogueNameTag>: Workflow {
    static var name: String { Tag.awkward.value }
    func run(_ ctx: WorkflowContext, _ hold: Bool) async throws -> String {
        let id = ctx.workflowID
        RunCounts.note("named:\(id)")
        let first = try await ctx.step("first") { "ran" }
        if hold { try await EngineGates.shared.wait(id) }
        return first + ":" + (try await ctx.step("second") { "\(Tag.awkward.rawValue)" })
    }
}

/// Hands a payload it holds to the library without copying it per run: mode 0 returns it as the result, mode 1
/// returns it from a step, mode 2 sets it as an event (1 and 2 report the error code they caught).
struct CatalogueBigResult: Workflow {
    static let name = "catalogue-big-result"
    let payload: String
    func run(_ ctx: WorkflowContext, _ mode: Int) async throws -> String {
        switch mode {
        case 1:
            let outcome = try await CatalogueOutcome.of(ctx) { _ = try await ctx.step("big") { payload } }
            return outcome.code ?? "stored"
        case 2:
            let outcome = try await CatalogueOutcome.of(ctx) { try await ctx.setEvent("big", payload) }
            return outcome.code ?? "stored"
        default:
            return payload
        }
    }
}

func registerCatalogueWorkflows(_ runtime: DurableRuntime) {
    runtime.register(CatalogueIdentity())
    runtime.register(CatalogueEcho())
    runtime.register(CatalogueEchoArray())
    runtime.register(CatalogueReceiver())
    runtime.register(CatalogueSender())
    runtime.register(CatalogueEventSetter())
    runtime.register(CatalogueStreamWriter())
    runtime.register(CatalogueBystander())
    runtime.register(CatalogueThrowing())
}

// MARK: - A database with a bystander

/// A launched runtime on a fresh database that already holds a finished bystander workflow (with a step, an
/// event, a stream, and a message waiting for it) and a declared queue, plus one plain SQL connection to look
/// at the rows with.
struct CatalogueHarness: Sendable {
    static let queue = "catalogue"
    static let bystander = "bystander"

    let database: TestDatabase
    let runtime: DurableRuntime
    let schema: String
    let sql: PGConnection

    /// A fresh database, a launched runtime, and the bystander.
    static func make(_ prefix: String, schema: String = "dbos", register: (DurableRuntime) -> Void = { _ in })
        async throws -> CatalogueHarness
    {
        let database = try await TestDatabase.fresh(prefix)
        let runtime = makeRuntime(database, schema: schema, register: register)
        try await runtime.launch()
        let sql = try await PGConnection.connect(PGConfiguration.forTests(database.url))
        let harness = CatalogueHarness(database: database, runtime: runtime, schema: schema, sql: sql)
        #expect(
            try await runtime.start(CatalogueBystander.self, "bystander-marker", id: bystander).result()
                == "bystander-marker")
        try await runtime.send(to: bystander, topic: "bystander", "a message nobody receives")
        return harness
    }

    /// A runtime (not launched) with the catalogue workflows and queue, the library's default payload limit, and
    /// whatever `register` adds.
    /// `executorID`: a reader beside the harness's runtime takes another, so it never recovers that one's work.
    static func makeRuntime(
        _ database: TestDatabase, schema: String = "dbos", executorID: String = "catalogue",
        queues: [WorkflowQueue] = [],
        register: (DurableRuntime) -> Void = { _ in }
    ) -> DurableRuntime {
        let runtime = DurableRuntime(
            configuration: DurableConfiguration(
                databaseURL: database.url, schema: schema, executorID: executorID, applicationVersion: "catalogue",
                // Few connections: the whole test process shares one server's max_connections with every suite.
                maxConnections: 3
            ),
            logger: CapturedLog().logger(level: .critical)
        )
        registerCatalogueWorkflows(runtime)
        runtime.register(queue: WorkflowQueue(Self.queue))
        for queue in queues { runtime.register(queue: queue) }
        register(runtime)
        return runtime
    }

    /// The same database, schema and SQL connection, driven by another runtime.
    func with(_ other: DurableRuntime) -> CatalogueHarness {
        CatalogueHarness(database: database, runtime: other, schema: schema, sql: sql)
    }

    /// Shuts the runtime down and closes the SQL connection.
    func close() async {
        await runtime.shutdown()
        await sql.close()
    }

    var quotedSchema: String { SQLIdentifier.quote(schema) }

    /// Runs one statement; `{schema}` stands for the quoted schema name.
    @discardableResult
    func query(_ text: String, _ parameters: [any PGParameter] = []) async throws -> QueryResult {
        try await sql.query(text.replacingOccurrences(of: "{schema}", with: quotedSchema), parameters)
    }

    /// The first column of the first row.
    func value(_ text: String, _ parameters: [any PGParameter] = []) async throws -> String? {
        try await query(text, parameters).first?.string(0)
    }

    /// A JSON object stored in a text column.
    func json(_ text: String, _ parameters: [any PGParameter] = []) async throws -> [String: Any]? {
        guard let stored = try await value(text, parameters) else { return nil }
        return try JSONSerialization.jsonObject(with: Data(stored.utf8)) as? [String: Any]
    }

    /// The tables a workflow writes to, each with the column naming the workflow a row belongs to.
    static let tables: [(table: String, owner: String)] = [
        ("workflow_status", "workflow_uuid"), ("workflow_input", "workflow_uuid"), ("workflow_output", "workflow_uuid"),
        ("operation_outputs", "workflow_uuid"), ("notifications", "destination_uuid"),
        ("workflow_events", "workflow_uuid"),
        ("workflow_events_history", "workflow_uuid"), ("streams", "workflow_uuid"), ("queues", "name"),
        ("workflow_schedules", "schedule_name"),
    ]

    /// A digest of every row of the system tables except those of the `excluded` workflows (or queues), table
    /// by table. Left out because they change on their own: heartbeats, the application-version registry, and a
    /// queue's `updated_at` (each launch re-declares its queues).
    func fingerprint(excluding excluded: [String] = []) async throws -> [String: String] {
        let parts = Self.tables.map { table, owner in
            let row = table == "queues" ? "(to_jsonb(t) - 'updated_at')::text" : "t::text"
            return """
                SELECT '\(table)', count(*), md5(coalesce(string_agg(\(row), E'\\n' ORDER BY \(row)), ''))
                FROM {schema}.\(table) t WHERE NOT (t.\(owner) = ANY($1::text[]))
                """
        }
        let result = try await query(parts.joined(separator: "\nUNION ALL\n"), [PGTextArray(excluded)])
        var digests: [String: String] = [:]
        for row in result.rows {
            digests[row.string(0) ?? "?"] = "\(row.string(1) ?? "?") rows, md5 \(row.string(2) ?? "?")"
        }
        #expect(digests.count == Self.tables.count)
        return digests
    }

    /// How many rows of `table` belong to `owner` (matched byte for byte by the server).
    func rows(_ table: String, of owner: String) async throws -> Int {
        let column = Self.tables.first { $0.table == table }?.owner ?? "workflow_uuid"
        return try await query("SELECT count(*) FROM {schema}.\(table) WHERE \(column) = $1", [owner]).first?.int(0)
            ?? -1
    }

    /// No row changed apart from those of `excluding`, the bystander still reads back, and the runtime still
    /// runs an ordinary workflow.
    func expectUnharmed(
        _ before: [String: String], excluding: [String] = [], sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        let after = try await fingerprint(excluding: excluding)
        for (table, digest) in before.sorted(by: { $0.key < $1.key }) where after[table] != digest {
            Issue.record(
                "table \(table) changed: \(digest) → \(after[table] ?? "missing")", sourceLocation: sourceLocation)
        }
        let probe = "still fine \(UUID().uuidString)"
        #expect(try await runtime.start(CatalogueEcho.self, probe).result() == probe, sourceLocation: sourceLocation)
        #expect(
            try await runtime.getEvent(Self.bystander, key: "bystander", as: String.self, timeout: .zero)
                == "bystander-marker", sourceLocation: sourceLocation)
    }
}

/// Runs one part of a test, recording an unexpected throw as an issue so the following parts still run.
func part(_ name: String, sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> Void) async {
    do {
        try await body()
    } catch {
        Issue.record(
            "\(name): unexpected \(type(of: error)): \(preview(String(describing: error)))",
            sourceLocation: sourceLocation)
    }
}

// MARK: - Clear refusals

/// Checks that `error` is a clear refusal of `input`: a ``DurableError`` with a code that fits the input, a
/// message that names the problem, and nothing of `payloadMarker` (a value the call carried) in it.
/// Input the library can store is never refused: that is an issue too.
@discardableResult
func expectClearRefusal(
    _ error: (any Error)?, of input: Awkward, what: String, payloadMarker: String,
    sourceLocation: SourceLocation = #_sourceLocation
) -> DurableError? {
    guard let error else {
        Issue.record("\(what) \(input): expected a refusal, got none", sourceLocation: sourceLocation)
        return nil
    }
    guard let durable = error as? DurableError else {
        Issue.record(
            "\(what) \(input): expected a DurableError, got \(type(of: error)): \(preview(String(describing: error)))",
            sourceLocation: sourceLocation)
        return nil
    }
    let text = String(describing: durable)
    #expect(
        !text.contains(payloadMarker), "\(what) \(input): the error shows the payload", sourceLocation: sourceLocation)
    // The message itself stays short even for a megabyte of input (the offending value may be the ID itself,
    // which `description` appends; the message should not repeat it).
    #expect(
        durable.message.utf8.count < 1024,
        "\(what) \(input): a \(durable.message.utf8.count)-byte message: \(preview(durable.message))",
        sourceLocation: sourceLocation)
    let message = durable.message.lowercased()
    if input.containsNUL {
        // A NUL cannot be stored in PostgreSQL text: the caller's mistake, to be named as such (as it is for a
        // workflow ID and a queue name). Once a bug (fixed): topics, event and stream keys, deduplication IDs,
        // idempotency keys and workflow names were not checked; libpq's guard refused them as databaseError
        // "parameter $N contains a NUL byte", which names neither the argument nor the caller as the cause.
        #expect(
            durable.code == .invalidArgument || durable.code == .invalidConfiguration
                || durable.code == .invalidRegistration,
            "\(what) \(input): a NUL byte should be invalidArgument (or invalidConfiguration/Registration), got \(preview(text))",
            sourceLocation: sourceLocation)
        #expect(
            message.contains("nul"), "\(what) \(input): the message should say 'NUL': \(preview(text))",
            sourceLocation: sourceLocation)
    } else if input.longerThanTheLimit {
        // Longer than the documented limit: refused by the library itself, naming the limit, without a round trip.
        // Once a bug (fixed): a 1 MB workflow ID went to the server and came back as databaseError with SQLSTATE
        // 54000 (index row too large), while a 4 KB compressible one was stored (so the real limit was unclear).
        let codeFits =
            durable.code == .invalidArgument || durable.code == .invalidConfiguration
            || durable.code == .invalidRegistration
        #expect(
            codeFits,
            "\(what) \(input): should be refused as invalidArgument (or invalidConfiguration/Registration): \(preview(text))",
            sourceLocation: sourceLocation)
        #expect(
            message.contains("800 bytes"),
            "\(what) \(input): the message should name the 800-byte limit: \(preview(text))",
            sourceLocation: sourceLocation)
        // The payload of these calls is small: an error blaming "payload" sends the reader to the wrong value.
        // Once a bug (fixed): a 1 MB event key failed setEvent with PostgreSQL's "payload string too long" (its
        // pg_notify payload is "<workflow ID>::<key>"), which reads as if the event's value were too large.
        #expect(
            !message.contains("payload"),
            "\(what) \(input): the message blames a payload, but the \(what) is what is too long: \(preview(text))",
            sourceLocation: sourceLocation)
    } else {
        Issue.record(
            "\(what) \(input): this value fits in PostgreSQL text and should work, but was refused: \(preview(text))",
            sourceLocation: sourceLocation)
    }
    return durable
}

/// What a call returned or threw.
struct Attempt<Value> {
    var value: Value?
    var error: (any Error)?
}

/// Runs `body` and keeps its value or its error.
func attempt<T>(_ body: () async throws -> T) async -> Attempt<T> {
    do {
        return Attempt(value: try await body(), error: nil)
    } catch {
        return Attempt(value: nil, error: error)
    }
}
