import Durable
import DurableTesting
import Synchronization
import Testing

// Workflows for DurableTesting's own tests, and a count of how often each step body really ran.

/// How often a step body ran, by workflow ID and step name, across this test process.
enum BodyRuns {
    private static let counts = Mutex<[String: Int]>([:])
    private static let visited = Mutex<Set<String>>([])

    static func note(_ workflowID: String, _ step: String) {
        counts.withLock { $0["\(workflowID)/\(step)", default: 0] += 1 }
    }

    static func count(_ workflowID: String, _ step: String) -> Int {
        counts.withLock { $0["\(workflowID)/\(step)"] ?? 0 }
    }

    /// True the first time it is asked for `workflowID`: lets a workflow behave differently when replayed, which
    /// is exactly the bug a crash test must catch.
    static func firstVisit(_ workflowID: String) -> Bool {
        visited.withLock { $0.insert(workflowID).inserted }
    }
}

/// Three steps: input + 1, × 10, + 3.
struct ThreeSteps: Workflow {
    static let name = "three-steps"
    func run(_ ctx: WorkflowContext, _ input: Int) async throws -> Int {
        let id = ctx.workflowID
        let a = try await ctx.step("one") {
            BodyRuns.note(id, "one")
            return input + 1
        }
        let b = try await ctx.step("two") {
            BodyRuns.note(id, "two")
            return a * 10
        }
        return try await ctx.step("three") {
            BodyRuns.note(id, "three")
            return b + 3
        }
    }
}

/// Names its second step differently when replayed: the library's own check must catch it.
struct RenamesOnReplay: Workflow {
    static let name = "renames-on-replay"
    func run(_ ctx: WorkflowContext, _ input: Int) async throws -> Int {
        let first = BodyRuns.firstVisit(ctx.workflowID)
        let a = try await ctx.step("one") { input }
        let b = try await ctx.step(first ? "two" : "two-renamed") { a + 1 }
        return try await ctx.step("three") { b + 1 }
    }
}

/// Skips its second step when replayed: the library cannot see this; the crash test must.
struct ShortcutOnReplay: Workflow {
    static let name = "shortcut-on-replay"
    func run(_ ctx: WorkflowContext, _ input: Int) async throws -> Int {
        let first = BodyRuns.firstVisit(ctx.workflowID)
        let a = try await ctx.step("one") { input }
        if first { _ = try await ctx.step("two") { a + 1 } }
        return a
    }
}

struct Refusal: Error, CustomStringConvertible {
    var description: String { "refused on purpose" }
}

/// Reserves, releases, then fails: a workflow whose own failure is its outcome.
struct ReleasesThenRefuses: Workflow {
    static let name = "releases-then-refuses"
    func run(_ ctx: WorkflowContext, _ input: Int) async throws -> Int {
        let id = ctx.workflowID
        _ = try await ctx.step("reserve") {
            BodyRuns.note(id, "reserve")
            return input
        }
        try await ctx.step("release") { BodyRuns.note(id, "release") }
        throw Refusal()
    }
}

/// Waits for a message nobody sends.
struct WaitsForever: Workflow {
    static let name = "waits-forever"
    func run(_ ctx: WorkflowContext, _ input: Int) async throws -> Int {
        let message = try await ctx.recv(Int.self, topic: "never", timeout: .seconds(3600))
        return message ?? input
    }
}

/// A child workflow: upper-cases its input in a step.
struct Shout: Workflow {
    static let name = "shout"
    func run(_ ctx: WorkflowContext, _ input: String) async throws -> String {
        let id = ctx.workflowID
        return try await ctx.step("shout") {
            BodyRuns.note(id, "shout")
            return input.uppercased()
        }
    }
}

/// One of most kinds of durable operation, numbered: 1 step, 2 sleep, 3 recv (and 4, its timeout), 5 child,
/// 6 event, 7 step.
struct Assorted: Workflow {
    static let name = "assorted"
    func run(_ ctx: WorkflowContext, _ input: String) async throws -> String {
        let id = ctx.workflowID
        let first = try await ctx.step("first") {
            BodyRuns.note(id, "first")
            return "a"
        }
        try await ctx.sleep(for: .milliseconds(5))
        let message = try await ctx.recv(String.self, topic: "nothing", timeout: .milliseconds(20))
        let child = try await ctx.runChild(Shout.self, input)
        try await ctx.setEvent("progress", 1)
        let last = try await ctx.step("last") {
            BodyRuns.note(id, "last")
            return "z"
        }
        return first + (message ?? "-") + child + last
    }
}

func registerTestWorkflows(_ runtime: DurableRuntime) {
    runtime.register(ThreeSteps())
    runtime.register(RenamesOnReplay())
    runtime.register(ShortcutOnReplay())
    runtime.register(ReleasesThenRefuses())
    runtime.register(WaitsForever())
    runtime.register(Shout())
    runtime.register(Assorted())
}

/// Expects `body` to throw a ``DurableError`` with `code` and returns it.
@discardableResult
func expectDurableError<T>(
    _ code: DurableError.Code,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () async throws -> T
) async -> DurableError? {
    do {
        let value = try await body()
        Issue.record("expected DurableError.\(code), got the value \(value)", sourceLocation: sourceLocation)
        return nil
    } catch let error as DurableError {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        return error
    } catch {
        Issue.record("expected DurableError.\(code), got \(type(of: error)): \(error)", sourceLocation: sourceLocation)
        return nil
    }
}
