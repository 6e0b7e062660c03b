// A queue worker process for the queue crash tests: it serves one queue and runs a multi-step "job" workflow
// whose steps write effects to a ledger, so a test can start several of them, SIGKILL one mid-run and count what
// really ran. Not a product; tests start it by path.
//
// usage: DurableQueueWorker --url URL --executor E [--queue Q] [--concurrency N] [--worker-concurrency N]
//                           [--takeover-ms N] [--app-version V] [--app-schema S]
// The test creates the app schema's tables before starting workers:
//   <S>.ledger (id bigserial, workflow_id text, step int, kind text, executor text)  -- one row per effect that ran
//   <S>.runs (id bigserial, workflow_id text, executor text, started_at timestamptz, ended_at timestamptz)
// Prints lines the test waits for: READY, STARTED <workflow id>, STEP <workflow id> <k> (after a plain step's
// effect), DONE <workflow id> (the body returns), FAILED <error>.
import Durable
import Foundation
import LibPQ
import Logging

struct Options {
    var url = ""
    var executor = ""
    var queue = "jobs"
    var concurrency: Int?
    var workerConcurrency: Int?
    var takeoverMilliseconds = 4_000
    var appVersion = "queue-crash"
    var appSchema = "queue_crash"

    init(arguments: [String]) {
        var iterator = arguments.dropFirst().makeIterator()
        while let flag = iterator.next() {
            func value() -> String {
                guard let next = iterator.next() else { fatalError("missing value for \(flag)") }
                return next
            }
            switch flag {
            case "--url": url = value()
            case "--executor": executor = value()
            case "--queue": queue = value()
            case "--concurrency": concurrency = Int(value())
            case "--worker-concurrency": workerConcurrency = Int(value())
            case "--takeover-ms": takeoverMilliseconds = Int(value())!
            case "--app-version": appVersion = value()
            case "--app-schema": appSchema = value()
            default: fatalError("unknown flag \(flag)")
            }
        }
        if url.isEmpty || executor.isEmpty { fatalError("--url and --executor are required") }
    }
}

/// Says something the parent test waits for, at once (stdout is a pipe, so it is written unbuffered).
func announce(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

/// The job's input; the test declares the same shape to enqueue it.
struct JobInput: Codable, Sendable {
    var index: Int
    var steps: Int
    /// The one step that runs as `ctx.transaction` (its effect is exactly once); every other step is plain.
    var transactionStep: Int
    /// How long each step holds after its effect: the window in which a kill falls between effect and checkpoint.
    var stepMilliseconds: Int
}

/// Records each attempt's run interval in `runs` (so the test can check overlaps across processes), then runs
/// its steps. Each plain step writes its ledger row outside the checkpoint (a kill between the two repeats it
/// on takeover); the transactional step writes its row in the checkpoint's transaction (never repeated).
/// Step k returns `index * 10 + k`, so the output is `steps * index * 10 + steps * (steps + 1) / 2`.
struct QueueJob: Workflow {
    static let name = "queue-crash-job"
    let executor: String
    let effects: ConnectionPool
    let appSchema: String

    func run(_ ctx: WorkflowContext, _ input: JobInput) async throws -> Int {
        let (executor, appSchema, workflowID) = (self.executor, self.appSchema, ctx.workflowID)
        // Every attempt, replay or not, gets a row: this is what tells the test where and when the body ran.
        let runID = try await effects.withConnection { connection in
            try await connection.query(
                "INSERT INTO \(appSchema).runs (workflow_id, executor, started_at) VALUES ($1, $2, clock_timestamp()) RETURNING id",
                [workflowID, executor]
            ).first?.int64(0)
        }
        announce("STARTED \(workflowID)")
        var total = 0
        for k in 1...input.steps {
            let value = input.index * 10 + k
            if k == input.transactionStep {
                total += try await ctx.transaction("tx-\(k)") { connection in
                    try await connection.query(
                        "INSERT INTO \(appSchema).ledger (workflow_id, step, kind, executor) VALUES ($1, $2, 'tx', $3)",
                        [workflowID, k, executor]
                    )
                    // Held open: a kill here rolls the effect back together with the checkpoint.
                    try await Task.sleep(for: .milliseconds(input.stepMilliseconds))
                    return value
                }
            } else {
                total += try await ctx.step("plain-\(k)") {
                    try await effects.withConnection { connection in
                        try await connection.query(
                            "INSERT INTO \(appSchema).ledger (workflow_id, step, kind, executor) VALUES ($1, $2, 'plain', $3)",
                            [workflowID, k, executor]
                        )
                    }
                    announce("STEP \(workflowID) \(k)")
                    try await Task.sleep(for: .milliseconds(input.stepMilliseconds))
                    return value
                }
            }
        }
        if let runID {
            try await effects.withConnection { connection in
                try await connection.query(
                    "UPDATE \(appSchema).runs SET ended_at = clock_timestamp() WHERE id = $1", [runID])
            }
        }
        announce("DONE \(workflowID)")
        return total
    }
}

let options = Options(arguments: CommandLine.arguments)
LoggingSystem.bootstrap { label in
    var handler = StreamLogHandler.standardError(label: label)
    handler.logLevel = .info
    return handler
}
let logger = Logger(label: "durable-queue-worker-\(options.executor)")
var effectsLogger = logger
effectsLogger.logLevel = .critical
let effects = ConnectionPool(
    configuration: PGConfiguration(connectionString: ConnectionString(options.url)),
    maxConnections: 4, logger: effectsLogger
)
let runtime = DurableRuntime(
    configuration: DurableConfiguration(
        databaseURL: options.url,
        executorID: options.executor,
        applicationVersion: options.appVersion,
        // Few connections: several workers and many test suites share one server.
        maxConnections: 8,
        // Heartbeats well inside the takeover limit, so a busy but live worker is never presumed dead.
        heartbeatInterval: .milliseconds(max(options.takeoverMilliseconds / 8, 50)),
        takeoverAfter: .milliseconds(options.takeoverMilliseconds)
    ),
    logger: logger
)
runtime.register(
    QueueJob(executor: options.executor, effects: effects, appSchema: SQLIdentifier.quote(options.appSchema)))
runtime.register(
    queue: WorkflowQueue(options.queue, concurrency: options.concurrency, workerConcurrency: options.workerConcurrency))
do {
    try await runtime.launch()
} catch {
    announce("FAILED \(error)")
    exit(1)
}
announce("READY")
// Serves the queue until the test kills it.
while true { try await Task.sleep(for: .seconds(3600)) }
