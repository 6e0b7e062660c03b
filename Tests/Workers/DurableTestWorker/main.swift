// A worker process for the crash tests: it runs a "ledger" workflow whose steps write effects to a table, and
// can pause at a chosen point so the test can SIGKILL it there. Not a product; tests start it by path.
//
// usage: DurableTestWorker --url URL --schema S --executor E --workflow ID --steps N
//                          [--start] [--pause-in K] [--pause-after K] [--step-prefix P]
//                          [--max-recovery-attempts N] [--app-version V] [--transactional]
//                          [--sleep-after K MS] [--recv-after K] [--takeover-ms N]
//                          [--event-after K]... [--stream] [--tag T] [--parent] [--timeout-ms N] [--resume]
// Prints lines the test waits for: READY, BODY <id>, IN_STEP <k>, AFTER_STEP <k>, EVENT_SET <k>, STREAMED <k>,
// STREAM_CLOSED, SLEEPING, WOKE, WAITING, GOT <message>, PARENT_BODY <id>, CHILD_STARTED <id>,
// CHILD_RESULT <value>, RESULT <value>, ERROR <code>, and with --parent also CHILD RESULT <value> or
// CHILD ERROR <code> (the child's outcome, awaited after the parent's).
import Durable
import Foundation
import LibPQ
import Logging

struct Options {
    var url = ""
    var schema = "dbos"
    var executor = "local"
    var workflowID = ""
    var steps = 3
    var start = false
    var pauseIn: Int?
    var pauseAfter: Int?
    var stepPrefix = "step"
    var maxRecoveryAttempts = 100
    var appVersion = "test"
    /// Steps write their ledger row with `ctx.transaction`, exactly once, instead of a plain step.
    var transactional = false
    /// After step K, sleep durably for the given milliseconds.
    var sleepAfter: (step: Int, milliseconds: Int)?
    /// After step K, wait up to 60 s for a message on topic "go".
    var receiveAfter: Int?
    /// Take over executors silent for this many milliseconds (heartbeat every quarter of it).
    var takeoverMilliseconds: Int?
    /// After each step K listed, set event "progress" to "<tag>-K" (before a --pause-after of that step).
    var eventAfter: Set<Int> = []
    /// After every step K, append "<tag>-K" to stream "numbers"; close the stream after the last step.
    var stream = false
    /// Goes into event and stream values, so a test that gives each process its own tag can tell a value
    /// written before a kill from one a restart wrote again: a replay must never rewrite a recorded value.
    var tag = "run"
    /// Start (or await) a "ledger-parent" workflow, which runs the ledger workflow as its child, instead of
    /// the ledger workflow itself. The pause flags then apply to the child.
    var parent = false
    /// Start the workflow with this timeout (its children inherit the deadline).
    var timeoutMilliseconds: Int?
    /// After launch, resume the workflow (it runs here from its last checkpoint), then await its result.
    var resume = false

    init(arguments: [String]) {
        var iterator = arguments.dropFirst().makeIterator()
        while let flag = iterator.next() {
            func value() -> String {
                guard let next = iterator.next() else { fatalError("missing value for \(flag)") }
                return next
            }
            switch flag {
            case "--url": url = value()
            case "--schema": schema = value()
            case "--executor": executor = value()
            case "--workflow": workflowID = value()
            case "--steps": steps = Int(value())!
            case "--start": start = true
            case "--pause-in": pauseIn = Int(value())
            case "--pause-after": pauseAfter = Int(value())
            case "--step-prefix": stepPrefix = value()
            case "--max-recovery-attempts": maxRecoveryAttempts = Int(value())!
            case "--app-version": appVersion = value()
            case "--transactional": transactional = true
            case "--sleep-after": sleepAfter = (Int(value())!, Int(value())!)
            case "--recv-after": receiveAfter = Int(value())
            case "--takeover-ms": takeoverMilliseconds = Int(value())
            case "--event-after": eventAfter.insert(Int(value())!)
            case "--stream": stream = true
            case "--tag": tag = value()
            case "--parent": parent = true
            case "--timeout-ms": timeoutMilliseconds = Int(value())!
            case "--resume": resume = true
            default: fatalError("unknown flag \(flag)")
            }
        }
    }
}

/// Says something the parent test waits for, at once (stdout is a pipe, so it is flushed by hand).
func announce(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

/// Blocks this workflow forever, so the parent can kill the process at exactly this point.
func pauseForever() async {
    while true { try? await Task.sleep(for: .seconds(3600)) }
}

struct LedgerInput: Codable, Sendable {
    var steps: Int
}

/// Each step appends one row to `ledger` (outside the workflow's checkpoints), so the test can count how often
/// each step's effect really ran.
struct LedgerWorkflow: Workflow {
    static let name = "ledger"
    let options: Options
    let effects: ConnectionPool
    let ledgerTable: String

    func run(_ ctx: WorkflowContext, _ input: LedgerInput) async throws -> Int {
        announce("BODY \(ctx.workflowID)")
        var total = 0
        for k in 1...input.steps {
            if options.transactional {
                total += try await ctx.transaction("\(options.stepPrefix)-\(k)") { connection in
                    try await connection.query(
                        "INSERT INTO \(ledgerTable) (workflow_id, step) VALUES ($1, $2)", [ctx.workflowID, k])
                    announce("IN_STEP \(k)")
                    // Paused inside the open transaction: a kill here rolls the row back.
                    if options.pauseIn == k { await pauseForever() }
                    return k
                }
            } else {
                total += try await ctx.step("\(options.stepPrefix)-\(k)") {
                    try await effects.withConnection { connection in
                        try await connection.query(
                            "INSERT INTO \(ledgerTable) (workflow_id, step) VALUES ($1, $2)", [ctx.workflowID, k])
                    }
                    announce("IN_STEP \(k)")
                    if options.pauseIn == k { await pauseForever() }
                    return k
                }
            }
            announce("AFTER_STEP \(k)")
            if options.eventAfter.contains(k) {
                try await ctx.setEvent("progress", "\(options.tag)-\(k)")
                announce("EVENT_SET \(k)")
            }
            if options.stream {
                try await ctx.writeStream("numbers", "\(options.tag)-\(k)")
                announce("STREAMED \(k)")
            }
            if options.pauseAfter == k { await pauseForever() }
            if let sleep = options.sleepAfter, sleep.step == k {
                announce("SLEEPING")
                try await ctx.sleep(for: .milliseconds(sleep.milliseconds))
                announce("WOKE")
            }
            if options.receiveAfter == k {
                announce("WAITING")
                let message = try await ctx.recv(String.self, topic: "go", timeout: .seconds(60))
                announce("GOT \(message ?? "<timeout>")")
            }
        }
        if options.stream {
            try await ctx.closeStream("numbers")
            announce("STREAM_CLOSED")
        }
        return total
    }
}

/// Writes ledger row 1, runs the ledger workflow as a child and awaits it, writes ledger row 2, and returns
/// the child's result plus 100. The child's ID is fixed (see `childID`), so the worker can await it too.
struct ParentWorkflow: Workflow {
    static let name = "ledger-parent"
    let effects: ConnectionPool
    let ledgerTable: String

    static func childID(of parentID: String) -> String { parentID + "-child" }

    func run(_ ctx: WorkflowContext, _ input: LedgerInput) async throws -> Int {
        announce("PARENT_BODY \(ctx.workflowID)")
        try await ctx.step("parent-before") { try await record(ctx.workflowID, 1) }
        let child = try await ctx.startChild(LedgerWorkflow.self, input, id: Self.childID(of: ctx.workflowID))
        announce("CHILD_STARTED \(child.id)")
        let result = try await child.result()
        announce("CHILD_RESULT \(result)")
        try await ctx.step("parent-after") { try await record(ctx.workflowID, 2) }
        return result + 100
    }

    private func record(_ id: String, _ step: Int) async throws {
        try await effects.withConnection { connection in
            try await connection.query("INSERT INTO \(ledgerTable) (workflow_id, step) VALUES ($1, $2)", [id, step])
        }
    }
}

/// "RESULT <value>" or "ERROR <code> <message>" once the workflow behind `handle` finishes, and whether it
/// succeeded.
func outcome(of handle: WorkflowHandle<Int>) async -> (line: String, succeeded: Bool) {
    do {
        return ("RESULT \(try await handle.result())", true)
    } catch let error as DurableError {
        return ("ERROR \(error.code) \(error.message)", false)
    } catch {
        return ("ERROR unexpected \(error)", false)
    }
}

let options = Options(arguments: CommandLine.arguments)
LoggingSystem.bootstrap { label in
    var handler = StreamLogHandler.standardError(label: label)
    handler.logLevel = .info
    return handler
}
let logger = Logger(label: "durable-test-worker")
let effects = ConnectionPool(
    configuration: PGConfiguration(connectionString: ConnectionString(options.url)),
    maxConnections: 2, logger: logger
)
let ledgerTable = SQLIdentifier.quote(options.schema + "_ledger") + ".ledger"
let runtime = DurableRuntime(
    configuration: DurableConfiguration(
        databaseURL: options.url,
        schema: options.schema,
        executorID: options.executor,
        applicationVersion: options.appVersion,
        maxRecoveryAttempts: options.maxRecoveryAttempts,
        heartbeatInterval: options.takeoverMilliseconds.map { .milliseconds($0 / 4) } ?? .seconds(5),
        takeoverAfter: options.takeoverMilliseconds.map { .milliseconds($0) }
    ),
    logger: logger
)
runtime.register(LedgerWorkflow(options: options, effects: effects, ledgerTable: ledgerTable))
runtime.register(ParentWorkflow(effects: effects, ledgerTable: ledgerTable))
do {
    try await runtime.launch()
    announce("READY")
    let timeout = options.timeoutMilliseconds.map { Duration.milliseconds($0) }
    if options.start {
        let input = LedgerInput(steps: options.steps)
        if options.parent {
            _ = try await runtime.start(ParentWorkflow.self, input, id: options.workflowID, timeout: timeout)
        } else {
            _ = try await runtime.start(LedgerWorkflow.self, input, id: options.workflowID, timeout: timeout)
        }
    }
    if options.resume { try await runtime.resume(options.workflowID) }
} catch let error as DurableError {
    announce("ERROR \(error.code) \(error.message)")
    await runtime.shutdown()
    exit(1)
}
let (line, succeeded) = await outcome(of: runtime.handle(for: options.workflowID))
announce(line)
if options.parent {
    // The child may still be finishing (a timeout cancels parent and child each on its own timer): stay until
    // it has an outcome too, so the test sees the final state of both.
    announce("CHILD " + (await outcome(of: runtime.handle(for: ParentWorkflow.childID(of: options.workflowID)))).line)
}
await runtime.shutdown()
exit(succeeded ? 0 : 1)
