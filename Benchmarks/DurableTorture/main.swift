// The torture run: worker processes run thousands of multi-step workflows from a queue while a controller
// SIGKILLs and restarts workers, restarts PostgreSQL itself (`pg_ctl restart -m immediate`, throwaway cluster
// only) and terminates connections. At the end it checks every workflow finished, every transactional effect
// happened exactly once, plain effects at least once, and nothing hung; it ends with "N passed, N failed".
//
// usage: durable-torture [--workflows N] [--steps S] [--workers W] [--seconds T] [--step-ms M] [--takeover-ms K]
//        (DATABASE_URL, else throwaway). With --takeover-ms a killed worker comes back under a new executor ID, so
//        its workflows are finished by the takeover of the others (and queued ones go back to the queue).
import Durable
import EmbeddedPostgres
import Foundation
import LibPQ
import Logging

let arguments = Array(CommandLine.arguments.dropFirst())
let schema = "durable_torture"
let appSchema = SQLIdentifier.quote("durable_torture_app")
let queue = WorkflowQueue("torture", workerConcurrency: 16)

func makeRuntime(
    url: String, executor: String, effects: ConnectionPool, serve: Bool = true, takeoverMilliseconds: Int? = nil
) -> DurableRuntime {
    var logger = Logger(label: "torture-\(executor)")
    logger.logLevel =
        ProcessInfo.processInfo.environment["TORTURE_LOG_LEVEL"].flatMap { Logger.Level(rawValue: $0) } ?? .critical
    let runtime = DurableRuntime(
        configuration: DurableConfiguration(
            databaseURL: url, schema: schema, executorID: executor, connectTimeout: .seconds(3),
            reconnectTimeout: .seconds(120), servedQueues: serve ? nil : [],
            heartbeatInterval: takeoverMilliseconds.map { .milliseconds(max(1, $0 / 4)) } ?? .seconds(5),
            takeoverAfter: takeoverMilliseconds.map { .milliseconds($0) } ?? .seconds(60)),
        logger: logger
    )
    runtime.register(TortureWorkflow(effects: effects, appSchema: appSchema))
    runtime.register(queue: queue)
    return runtime
}

if arguments.first == "__worker", arguments.count == 3 || arguments.count == 4 {
    LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
    let (url, executor) = (arguments[1], arguments[2])
    var logger = Logger(label: "torture-effects")
    logger.logLevel = .critical
    let effects = ConnectionPool(
        configuration: PGConfiguration(connectionString: ConnectionString(url)), maxConnections: 4, logger: logger)
    let runtime = makeRuntime(
        url: url, executor: executor, effects: effects,
        takeoverMilliseconds: arguments.count == 4 ? Int(arguments[3]) : nil)
    // Postgres may be restarting: keep trying to launch.
    while true {
        do {
            try await runtime.launch()
            break
        } catch {
            try await Task.sleep(for: .milliseconds(500))
        }
    }
    FileHandle.standardOutput.write(Data("READY\n".utf8))
    while true { try await Task.sleep(for: .seconds(3600)) }
}

var workflows = 1_000
var steps = 4
var workerCount = 3
var seconds = 30
var stepMilliseconds = 100
var takeoverMilliseconds: Int?
var iterator = arguments.makeIterator()
while let flag = iterator.next() {
    let value = Int(iterator.next() ?? "") ?? -1
    switch flag {
    case "--workflows": workflows = value
    case "--steps": steps = value
    case "--workers": workerCount = value
    case "--seconds": seconds = value
    case "--step-ms": stepMilliseconds = value
    case "--takeover-ms" where value >= 10: takeoverMilliseconds = value  // the heartbeat is a quarter of it
    default:
        FileHandle.standardError.write(
            Data(
                "usage: durable-torture [--workflows N] [--steps S] [--workers W] [--seconds T] [--step-ms M] [--takeover-ms K]\n"
                    .utf8))
        exit(2)
    }
}
try await Torture(
    workflows: workflows, steps: steps, workers: workerCount, seconds: seconds, stepMilliseconds: stepMilliseconds,
    takeoverMilliseconds: takeoverMilliseconds
).run()
