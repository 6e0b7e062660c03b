import Durable
import Foundation

// Workflows of the Engine*, Crash* and BadInput* suites. Each counts the runs of its body and step bodies in
// `RunCounts` under its (unique) workflow ID, and can be held at `EngineGates.shared` under that ID.

struct HoldInput: Codable, Sendable, Equatable {
    /// Steps `s-1` … `s-<steps>`, step k returning k.
    var steps: Int
    /// Hold at the gate after this step (0: before the first step); nil: never hold.
    var holdAfter: Int?
}

/// The plain workhorse: numbered steps, an optional hold.
struct EngineCounted: Workflow {
    static let name = "engine-counted"
    func run(_ ctx: WorkflowContext, _ input: HoldInput) async throws -> Int {
        let id = ctx.workflowID
        RunCounts.note("body:\(id)")
        if input.holdAfter == 0 { try await EngineGates.shared.wait(id) }
        var total = 0
        for k in stride(from: 1, through: input.steps, by: 1) {
            total += try await ctx.step("s-\(k)") {
                RunCounts.note("step:\(id):\(k)")
                return k
            }
            if input.holdAfter == k { try await EngineGates.shared.wait(id) }
        }
        return total
    }
}

/// Another durable name with the same input, to collide with `EngineCounted`'s IDs.
struct EngineOther: Workflow {
    static let name = "engine-other"
    func run(_ ctx: WorkflowContext, _ input: HoldInput) async throws -> String {
        RunCounts.note("other:\(ctx.workflowID)")
        return "other"
    }
}

struct EngineRefusal: Error, CustomStringConvertible {
    var reason: String
    var description: String { "refused: \(reason)" }
}

struct FailInput: Codable, Sendable {
    /// Catch the failed step's error and carry on.
    var catchFailure: Bool
    /// Hold at the gate after the failed step.
    var hold: Bool
}

/// Step 2 (`charge`) always throws `EngineRefusal`.
struct EngineFailing: Workflow {
    static let name = "engine-failing"
    func run(_ ctx: WorkflowContext, _ input: FailInput) async throws -> String {
        let id = ctx.workflowID
        RunCounts.note("body:\(id)")
        _ = try await ctx.step("reserve") {
            RunCounts.note("reserve:\(id)")
            return 1
        }
        var caught = "none"
        do {
            try await ctx.step("charge") {
                RunCounts.note("charge:\(id)")
                throw EngineRefusal(reason: "no budget")
            }
        } catch let error as DurableError where input.catchFailure {
            caught = "\(error.code)/\(error.errorName ?? "-")"
        }
        if input.hold { try await EngineGates.shared.wait(id) }
        try await ctx.step("ship") { RunCounts.note("ship:\(id)") }
        return caught
    }
}

/// Two steps that return nothing, then one that returns 3.
struct EngineVoidSteps: Workflow {
    static let name = "engine-void"
    func run(_ ctx: WorkflowContext, _ hold: Bool) async throws -> Int {
        let id = ctx.workflowID
        RunCounts.note("body:\(id)")
        try await ctx.step("void-1") { RunCounts.note("void-1:\(id)") }
        try await ctx.step("void-2") { RunCounts.note("void-2:\(id)") }
        if hold { try await EngineGates.shared.wait(id) }
        return try await ctx.step("int-3") {
            RunCounts.note("int-3:\(id)")
            return 3
        }
    }
}

struct ChildTaskInput: Codable, Sendable {
    /// "asyncLet", "taskGroup" or "unstructured".
    var mode: String
    /// Catch the refusal and carry on with a step from the workflow's own task.
    var catchRefusal: Bool
}

/// Calls a step from a child task, which the library must refuse.
struct EngineChildTask: Workflow {
    static let name = "engine-child-task"
    func run(_ ctx: WorkflowContext, _ input: ChildTaskInput) async throws -> String {
        let id = ctx.workflowID
        func fromChild() async throws -> Int {
            switch input.mode {
            case "asyncLet":
                async let value = ctx.step("child") {
                    RunCounts.note("child:\(id)")
                    return 1
                }
                return try await value
            case "taskGroup":
                return try await withThrowingTaskGroup(of: Int.self) { group in
                    group.addTask {
                        try await ctx.step("child") {
                            RunCounts.note("child:\(id)")
                            return 1
                        }
                    }
                    return try await group.next() ?? -1
                }
            default:
                return try await Task {
                    try await ctx.step("child") {
                        RunCounts.note("child:\(id)")
                        return 1
                    }
                }.value
            }
        }
        var caught = "none"
        if input.catchRefusal {
            do { _ = try await fromChild() } catch let error as DurableError { caught = error.code.rawValue }
        } else {
            _ = try await fromChild()
        }
        let after = try await ctx.step("after") { 7 }
        return "\(caught)|\(after)"
    }
}

/// Durable operations inside a step body are plain calls, even from a child task of the step.
struct EngineNested: Workflow {
    static let name = "engine-nested"
    func run(_ ctx: WorkflowContext, _ base: Int) async throws -> Int {
        let id = ctx.workflowID
        let outer = try await ctx.step("outer") {
            RunCounts.note("outer:\(id)")
            let inner = try await ctx.step("inner") {
                RunCounts.note("inner:\(id)")
                return base
            }
            try await ctx.step("inner-void") { RunCounts.note("inner-void:\(id)") }
            async let fromChild = ctx.step("inner-child") {
                RunCounts.note("inner-child:\(id)")
                return 1
            }
            return inner + (try await fromChild)
        }
        return try await ctx.step("after") { outer + 1 }
    }
}

struct Parcel: Codable, Sendable, Equatable {
    var sku: String
    var weight: Double
    var sentAt: Date
    var tags: [String]
}

struct ShippingLabel: Codable, Sendable, Equatable {
    var code: String
    var printedAt: Date
}

/// Steps of three shapes (a number, a struct with a date, nothing), held after the first.
struct EngineShipping: Workflow {
    static let name = "engine-shipping"
    func run(_ ctx: WorkflowContext, _ parcel: Parcel) async throws -> ShippingLabel {
        let id = ctx.workflowID
        let grams = try await ctx.step("weigh") { parcel.weight * 1000 }
        try await EngineGates.shared.wait(id)
        let label = try await ctx.step("print-label") {
            ShippingLabel(code: "\(parcel.sku)-\(Int(grams))", printedAt: parcel.sentAt.addingTimeInterval(60))
        }
        try await ctx.step("notify") {}
        return label
    }
}

/// Its step's name depends on how it was registered: registering another prefix is a code change.
struct EngineRenamable: Workflow {
    static let name = "engine-renamable"
    let prefix: String
    func run(_ ctx: WorkflowContext, _ hold: Bool) async throws -> String {
        let id = ctx.workflowID
        var caught = "none"
        do {
            _ = try await ctx.step("\(prefix)-1") {
                RunCounts.note("renamable:\(id):\(prefix)")
                return 1
            }
        } catch {
            caught = "\(error)"  // a body that swallows every error must still not turn a fatal one into success
        }
        if hold { try await EngineGates.shared.wait(id) }
        return caught
    }
}

/// Returns a string of the requested size from a step (to trip the payload limit), catching the step's error.
struct EngineBigStep: Workflow {
    static let name = "engine-big-step"
    func run(_ ctx: WorkflowContext, _ size: Int) async throws -> String {
        let id = ctx.workflowID
        var outcome: String
        do {
            let big = try await ctx.step("big") {
                RunCounts.note("big:\(id)")
                return String(repeating: "x", count: size)
            }
            outcome = "ok:\(big.count)"
        } catch let error as DurableError {
            outcome = error.code.rawValue
        }
        let after = try await ctx.step("after") { 1 }
        return "\(outcome)|\(after)"
    }
}

/// Returns its input string (of any size) as its workflow result.
struct EngineEcho: Workflow {
    static let name = "engine-echo"
    func run(_ ctx: WorkflowContext, _ text: String) async throws -> String {
        RunCounts.note("body:\(ctx.workflowID)")
        return text
    }
}

/// Records a big step, then holds, so a runtime with a smaller limit has to recover it.
struct EngineBigThenHold: Workflow {
    static let name = "engine-big-then-hold"
    func run(_ ctx: WorkflowContext, _ size: Int) async throws -> Int {
        let id = ctx.workflowID
        let big = try await ctx.step("big") {
            RunCounts.note("big:\(id)")
            return String(repeating: "y", count: size)
        }
        try await EngineGates.shared.wait(id)
        return big.count
    }
}

/// A struct input, held before any step, so a test can corrupt its recorded input.
struct Shipment: Codable, Sendable {
    var to: String
    var count: Int
}

struct EngineShipmentCount: Workflow {
    static let name = "engine-shipment"
    func run(_ ctx: WorkflowContext, _ shipment: Shipment) async throws -> Int {
        let id = ctx.workflowID
        RunCounts.note("body:\(id)")
        try await EngineGates.shared.wait(id)
        return try await ctx.step("count") { shipment.count }
    }
}

/// Registers every fixture above.
func registerEngineFixtures(_ runtime: DurableRuntime) {
    runtime.register(EngineCounted())
    runtime.register(EngineOther())
    runtime.register(EngineFailing())
    runtime.register(EngineVoidSteps())
    runtime.register(EngineChildTask())
    runtime.register(EngineNested())
    runtime.register(EngineShipping())
    runtime.register(EngineBigStep())
    runtime.register(EngineEcho())
    runtime.register(EngineBigThenHold())
    runtime.register(EngineShipmentCount())
}
