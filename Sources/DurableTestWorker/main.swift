// A worker process for the crash tests: it runs a "ledger" workflow whose steps write effects to a table, and
// can pause at a chosen point so the test can SIGKILL it there. Not a product; tests start it by path.
//
// usage: DurableTestWorker --url URL --schema S --executor E --workflow ID --steps N
//                          [--start] [--pause-in K] [--pause-after K] [--step-prefix P]
//                          [--max-recovery-attempts N] [--app-version V] [--transactional]
//                          [--sleep-after K MS] [--recv-after K] [--takeover-ms N]
// Prints lines the test waits for: READY, BODY <id>, IN_STEP <k>, AFTER_STEP <k>, SLEEPING, WOKE, WAITING,
// GOT <message>, RESULT <value>, ERROR <code>.
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
                    try await connection.query("INSERT INTO \(ledgerTable) (workflow_id, step) VALUES ($1, $2)", [ctx.workflowID, k])
                    announce("IN_STEP \(k)")
                    // Paused inside the open transaction: a kill here rolls the row back.
                    if options.pauseIn == k { await pauseForever() }
                    return k
                }
            } else {
                total += try await ctx.step("\(options.stepPrefix)-\(k)") {
                    try await effects.withConnection { connection in
                        try await connection.query("INSERT INTO \(ledgerTable) (workflow_id, step) VALUES ($1, $2)", [ctx.workflowID, k])
                    }
                    announce("IN_STEP \(k)")
                    if options.pauseIn == k { await pauseForever() }
                    return k
                }
            }
            announce("AFTER_STEP \(k)")
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
        return total
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
    configuration: PostgresConfiguration(connectionString: ConnectionString(options.url)),
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
do {
    try await runtime.launch()
    announce("READY")
    let handle: WorkflowHandle<Int>
    if options.start {
        handle = try await runtime.start(LedgerWorkflow.self, LedgerInput(steps: options.steps), id: options.workflowID)
    } else {
        handle = runtime.handle(for: options.workflowID)
    }
    let result = try await handle.result()
    announce("RESULT \(result)")
    await runtime.shutdown()
    exit(0)
} catch let error as DurableError {
    announce("ERROR \(error.code) \(error.message)")
    await runtime.shutdown()
    exit(1)
}
