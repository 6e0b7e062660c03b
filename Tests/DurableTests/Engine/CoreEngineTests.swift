import Durable
import Foundation
import LibPQ
import Synchronization
import Testing

/// Counts body runs per workflow ID across the test process.
enum BodyRuns {
    static let counts = Mutex<[String: Int]>([:])
    static func note(_ id: String) { counts.withLock { $0[id, default: 0] += 1 } }
    static func count(_ id: String) -> Int { counts.withLock { $0[id] ?? 0 } }
}

struct Order: Codable, Sendable, Equatable {
    var item: String
    var quantity: Int
    var placedAt: Date
}

struct Receipt: Codable, Sendable, Equatable {
    var item: String
    var total: Int
}

struct PaymentDeclined: Error, CustomStringConvertible {
    var description: String { "card declined" }
}

/// Two steps; the second fails for quantity 0.
struct PlaceOrder: Workflow {
    static let name = "place-order"
    func run(_ ctx: WorkflowContext, _ order: Order) async throws -> Receipt {
        BodyRuns.note(ctx.workflowID)
        let price = try await ctx.step("price") { 7 }
        try await ctx.step("charge") { if order.quantity == 0 { throw PaymentDeclined() } }
        return Receipt(item: order.item, total: price * order.quantity)
    }
}

/// Another workflow, to collide with PlaceOrder's IDs.
struct Refund: Workflow {
    static let name = "refund"
    func run(_ ctx: WorkflowContext, _ order: Order) async throws -> Int { 0 }
}

/// Calls steps from child tasks, which must be refused.
struct Racy: Workflow {
    static let name = "racy"
    func run(_ ctx: WorkflowContext, _ useGroup: Bool) async throws -> Int {
        if useGroup {
            return try await withThrowingTaskGroup(of: Int.self) { group in
                group.addTask { try await ctx.step("a") { 1 } }
                return try await group.next() ?? 0
            }
        }
        async let first = ctx.step("a") { 1 }
        return try await first
    }
}

/// A step inside a step is a plain call.
struct Nested: Workflow {
    static let name = "nested"
    func run(_ ctx: WorkflowContext, _ value: Int) async throws -> Int {
        try await ctx.step("outer") {
            try await ctx.step("inner") { value + 1 }
        }
    }
}

@Suite("Engine")
struct CoreEngineTests {
    static func register(_ runtime: DurableRuntime) {
        runtime.register(PlaceOrder())
        runtime.register(Refund())
        runtime.register(Racy())
        runtime.register(Nested())
    }

    func harness(_ prefix: String, executor: String = "engine") async throws -> MessagingHarness {
        try await MessagingHarness.make(prefix: prefix, executorID: executor, register: Self.register)
    }

    let order = Order(item: "tea", quantity: 3, placedAt: Date(timeIntervalSince1970: 1_767_323_045.678))

    @Test("starting an ID twice runs the body once; after it finished, the recorded result comes back")
    func idempotentStart() async throws {
        let h = try await harness("engine_idempotent")
        let id = "order-\(UUID())"
        let first = try await h.runtime.start(PlaceOrder.self, order, id: id)
        let second = try await h.runtime.start(PlaceOrder.self, order, id: id)
        #expect(try await first.result() == Receipt(item: "tea", total: 21))
        #expect(try await second.result() == Receipt(item: "tea", total: 21))
        let third = try await h.runtime.start(PlaceOrder.self, order, id: id)
        #expect(try await third.result() == Receipt(item: "tea", total: 21))
        #expect(BodyRuns.count(id) == 1)
        await h.runtime.shutdown()
    }

    @Test("the same ID under another workflow name is a conflict")
    func conflict() async throws {
        let h = try await harness("engine_conflict")
        _ = try await h.runtime.start(PlaceOrder.self, order, id: "taken").result()
        do {
            _ = try await h.runtime.start(Refund.self, order, id: "taken")
            Issue.record("expected a conflict")
        } catch let error as DurableError {
            #expect(error.code == .conflictingWorkflowID)
            #expect(error.message.contains("place-order"))
        }
        await h.runtime.shutdown()
    }

    @Test("another runtime (another process) reads the status and result by ID")
    func resultFromElsewhere() async throws {
        let h = try await harness("engine_elsewhere", executor: "writer")
        let handle = try await h.runtime.start(PlaceOrder.self, order, id: "shared")
        let reader = MessagingHarness.makeRuntime(url: h.url, executorID: "reader") { _ in }
        let remote: WorkflowHandle<Receipt> = reader.handle(for: "shared")
        #expect(try await remote.result() == Receipt(item: "tea", total: 21))
        _ = try await handle.result()
        let status = try await remote.status()
        #expect(status.state == .success)
        #expect(status.name == "place-order")
        #expect(status.executorID == "writer")
        #expect(status.recoveryAttempts == 1)
        #expect(try await reader.status(of: "no-such-id") == nil)
        await reader.shutdown()
        await h.runtime.shutdown()
    }

    @Test("a failing step records its error; the workflow fails with the original error's name")
    func failingStep() async throws {
        let h = try await harness("engine_failure")
        let handle = try await h.runtime.start(
            PlaceOrder.self, Order(item: "tea", quantity: 0, placedAt: order.placedAt), id: "declined")
        do {
            _ = try await handle.result()
            Issue.record("expected the workflow to fail")
        } catch let error as DurableError {
            #expect(error.code == .workflowFailed)
            #expect(error.errorName == "PaymentDeclined")
            #expect(error.message.contains("card declined"))
        }
        let step = try await h.query(
            "SELECT output, error, serialization FROM dbos.operation_outputs WHERE workflow_uuid = 'declined' AND function_id = 2"
        )
        #expect(step.first?.string(0) == nil)
        let stored = try #require(step.first?.string(1))
        let json = try #require(try JSONSerialization.jsonObject(with: Data(stored.utf8)) as? [String: Any])
        #expect(json["name"] as? String == "PaymentDeclined")
        #expect(json["message"] as? String == "card declined")
        #expect(json.keys.contains("code"))
        let outcome = try await h.query(
            "SELECT ws.status, wo.error IS NOT NULL, ws.owner_xid FROM dbos.workflow_status ws JOIN dbos.workflow_output wo USING (workflow_uuid) WHERE workflow_uuid = 'declined'"
        )
        #expect(outcome.first?.string(0) == "ERROR")
        #expect(outcome.first?.bool(1) == true)
        #expect(outcome.first?.string(2) == nil)
        await h.runtime.shutdown()
    }

    @Test("rows are written where and how DBOS 3.4.0 writes them")
    func rowsAsDBOS() async throws {
        let h = try await harness("engine_rows")
        _ = try await h.runtime.start(PlaceOrder.self, order, id: "rows").result()
        let status = try await h.query(
            """
            SELECT status, name, executor_id, application_version, recovery_attempts, serialization, creator_xid IS NOT NULL,
                   owner_xid, inputs, output, error, class_name, config_name, queue_name, completed_at IS NOT NULL
            FROM dbos.workflow_status WHERE workflow_uuid = 'rows'
            """)
        let row = try #require(status.first)
        #expect(row.string(0) == "SUCCESS")
        #expect(row.string(1) == "place-order")
        #expect(row.string(2) == "engine")
        #expect(row.int(4) == 1)
        #expect(row.string(5) == "portable_json")
        #expect(row.bool(6) == true)
        for column in [7, 8, 9, 10, 11, 12, 13] { #expect(row.string(column) == nil) }
        #expect(row.bool(14) == true)
        let input = try await h.query("SELECT inputs FROM dbos.workflow_input WHERE workflow_uuid = 'rows'")
        #expect(
            input.first?.string(0)
                == #"{"namedArgs":{},"positionalArgs":[{"item":"tea","placedAt":"2026-01-02T03:04:05.678Z","quantity":3}]}"#
                || input.first?.string(0)?.contains(#""placedAt":"2026-01-02T03:04:05.678Z""#) == true)
        let output = try await h.query("SELECT output FROM dbos.workflow_output WHERE workflow_uuid = 'rows'")
        #expect(output.first?.string(0)?.contains(#""total":21"#) == true)
        let steps = try await h.query(
            "SELECT function_id, function_name, output, serialization FROM dbos.operation_outputs WHERE workflow_uuid = 'rows' ORDER BY 1"
        )
        #expect(steps.rows.map { $0.int(0) } == [1, 2])
        #expect(steps.rows.map { $0.string(1) } == ["price", "charge"])
        #expect(steps.rows.map { $0.string(2) } == ["7", "null"])
        #expect(steps.rows.allSatisfy { $0.string(3) == "portable_json" })
        await h.runtime.shutdown()
    }

    @Test("steps called from child tasks are refused; a step inside a step is a plain call", arguments: [false, true])
    func childTasks(useGroup: Bool) async throws {
        let h = try await harness("engine_tasks")
        do {
            _ = try await h.runtime.start(Racy.self, useGroup).result()
            Issue.record("expected stepOutsideWorkflowTask")
        } catch let error as DurableError {
            #expect(error.code == .stepOutsideWorkflowTask)
            #expect(error.message.contains("child task"))
        }
        #expect(try await h.runtime.start(Nested.self, 41, id: "nested").result() == 42)
        let steps = try await h.query("SELECT function_name FROM dbos.operation_outputs WHERE workflow_uuid = 'nested'")
        #expect(steps.rows.map { $0.string(0) } == ["outer"])
        await h.runtime.shutdown()
    }
}
