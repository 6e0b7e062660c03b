// Benchmarks for Durable, printed as markdown tables. Every row is measured in the same run on the same server;
// the sequential workloads are interleaved round by round so that drift of the shared disk affects all alike.
//
// usage: durable-bench [all | primitives | queues | scale] [--rounds N]   (DATABASE_URL, else a throwaway Postgres)
//   (none)  sequential workflows against the raw commit floor and DBOS Python
//   all     every suite on one server, then one table of the headline figures with their ratios and targets
import Durable
import EmbeddedPostgres
import Foundation
import LibPQ
import Logging

var rounds = 5
var suite = "core"
let childArguments = Array(CommandLine.arguments.dropFirst())
if childArguments.first == "__receiver", childArguments.count == 5 {
    try await PrimitiveWorker.receive(
        url: childArguments[1], schema: childArguments[2], id: childArguments[3], count: Int(childArguments[4])!)
    exit(0)
}
if childArguments.first == "__pending", childArguments.count == 5 {
    try await ScaleBenchmarks.holdPending(
        url: childArguments[1], schema: childArguments[2], executor: childArguments[3], count: Int(childArguments[4])!)
}
if childArguments.first == "__queueworker", childArguments.count == 3 {
    try await QueueBenchmarks.serve(url: childArguments[1], schema: childArguments[2])
}
if childArguments.first == "__sleepers", childArguments.count == 4 {
    try await PrimitiveWorker.holdSleepers(
        url: childArguments[1], schema: childArguments[2], count: Int(childArguments[3])!)
}
var arguments = childArguments.makeIterator()
while let argument = arguments.next() {
    switch argument {
    case "--rounds": rounds = Int(arguments.next() ?? "") ?? rounds
    case "primitives": suite = "primitives"
    case "queues": suite = "queues"
    case "scale": suite = "scale"
    case "all": suite = "all"
    default:
        FileHandle.standardError.write(
            Data("usage: durable-bench [all | primitives | queues | scale] [--rounds N]\n".utf8))
        exit(2)
    }
}

func note(_ text: String) { FileHandle.standardError.write(Data((text + "\n").utf8)) }

var embedded: EmbeddedPostgres?
let url: String
if let external = ProcessInfo.processInfo.environment["DATABASE_URL"], !external.isEmpty {
    url = external
} else {
    note("starting a throwaway Postgres (set DATABASE_URL to use another server)…")
    let server = try await EmbeddedPostgres.start()
    embedded = server
    url = server.url
}

var logger = Logger(label: "durable-bench")
logger.logLevel = .warning
let schema = "durable_bench"
let table = SQLIdentifier.quote(schema) + ".raw_commits"
let raw = try await PGConnection.connect(PGConfiguration(connectionString: ConnectionString(url)))
try await raw.execute(
    "CREATE SCHEMA IF NOT EXISTS \(SQLIdentifier.quote(schema)); CREATE TABLE IF NOT EXISTS \(table) (id bigserial PRIMARY KEY, v text)"
)

if suite == "scale" {
    try await ScaleBenchmarks(url: url, schema: schema).run()
    await raw.close()
    await embedded?.stop()
    exit(0)
}
if suite == "queues" {
    try await QueueBenchmarks(url: url, schema: schema).run()
    await raw.close()
    await embedded?.stop()
    exit(0)
}
if suite == "primitives" {
    try await PrimitiveBenchmarks(url: url, schema: schema).run()
    await raw.close()
    await embedded?.stop()
    exit(0)
}

let runtime = DurableRuntime(
    configuration: DurableConfiguration(
        databaseURL: url, schema: schema, executorID: "bench-\(ProcessInfo.processInfo.processIdentifier)"),
    logger: logger
)
runtime.register(NoOpWorkflow())
try await runtime.launch()

let workloads = [
    Workload(name: "raw insert commit (floor)", perRound: 400, operation: rawInsertCommit(raw, table: table)),
    Workload(name: "workflow, 0 steps", perRound: 100, operation: sequentialWorkflow(runtime, steps: 0)),
    Workload(name: "workflow, 1 step", perRound: 100, operation: sequentialWorkflow(runtime, steps: 1)),
    Workload(name: "workflow, 10 steps", perRound: 50, operation: sequentialWorkflow(runtime, steps: 10)),
]

// Warm up: connections, prepared statements, caches.
for workload in workloads {
    for _ in 0..<20 { _ = try await workload.operation() }
}

let peerAvailable = PythonPeer.isAvailable
if !peerAvailable { note("DBOS Python peer not found (.venv-dbos); its rows are left out. scripts/bench sets it up.") }
// Our rows, then the peer's rows for 0, 1 and 10 steps.
let names =
    workloads.map(\.name) + ["DBOS Python 3.4.0, 0 steps", "DBOS Python 3.4.0, 1 step", "DBOS Python 3.4.0, 10 steps"]
var samples = Array(repeating: [Double](), count: names.count)
var roundMedians = Array(repeating: [Double](), count: names.count)
@MainActor func add(_ these: [Double], to index: Int) {
    samples[index] += these
    roundMedians[index].append(LatencySummary(these).p50)
}
for round in 1...rounds {
    note("round \(round)/\(rounds)")
    for (index, workload) in workloads.enumerated() {
        var these: [Double] = []
        for _ in 0..<workload.perRound { these.append(try await workload.operation().milliseconds) }
        add(these, to: index)
    }
    if peerAvailable {
        let measured = try await PythonPeer.sequentialSamples(
            url: url, counts: (workloads[1].perRound, workloads[2].perRound, workloads[3].perRound))
        for (offset, steps) in [0, 1, 10].enumerated() { add(measured[steps] ?? [], to: workloads.count + offset) }
    }
}

let summaries = samples.map(LatencySummary.init)
let floor = summaries[0]
func format(_ value: Double) -> String { String(format: "%.3f", value) }

print(
    "| workload | samples | mean ms | p50 ms | p99 ms | p50 per round (min–max) | p50 / raw commit | ours / DBOS Python (p50) |"
)
print("|---|---:|---:|---:|---:|---|---:|---:|")
for (index, name) in names.enumerated() where summaries[index].count > 0 {
    let summary = summaries[index]
    let spread = "\(format(roundMedians[index].min() ?? 0))–\(format(roundMedians[index].max() ?? 0))"
    let ratio = String(format: "%.2f×", summary.p50 / floor.p50)
    var versusPeer = ""
    if (1...3).contains(index), summaries[index + 3].count > 0 {
        versusPeer = String(format: "%.2f×", summary.p50 / summaries[index + 3].p50)
    }
    print(
        "| \(name) | \(summary.count) | \(format(summary.mean)) | \(format(summary.p50)) | \(format(summary.p99)) | \(spread) | \(ratio) | \(versusPeer) |"
    )
}
let tenSteps = summaries[3]
print("")
print(
    String(
        format: "10-step workflow vs 11 raw insert commits: %.2f× by p50, %.2f× by mean (target ≤ 1.30×)",
        tenSteps.p50 / (11 * floor.p50), tenSteps.mean / (11 * floor.mean)))
print(
    "rounds: \(rounds), interleaved; server: \(embedded == nil ? "DATABASE_URL" : "throwaway local PostgreSQL, fsync on")"
)

await runtime.shutdown()

if suite == "all" {
    var summary = Summary()
    summary.add(.init(figure: "raw insert commit, p50 (ms) (floor)", ours: Summary.number(floor.p50, 3)))
    for (index, steps) in [(1, 0), (2, 1), (3, 10)] {
        let ours = summaries[index].p50
        let theirs = summaries[index + 3].count > 0 ? summaries[index + 3].p50 : nil
        summary.add(
            .init(
                figure: "workflow of \(steps) step\(steps == 1 ? "" : "s"), p50 (ms)", ours: Summary.number(ours, 3),
                dbos: theirs.map { Summary.number($0, 3) } ?? "",
                versusDBOS: theirs.map { Summary.ratio(ours / $0) } ?? "",
                versusFloor: steps == 10 ? Summary.ratio(ours / (11 * floor.p50)) + " of 11 commits" : "",
                target: steps == 10 ? "≤ 1.30× of 11 commits" : ""
            ))
    }
    print("")
    note("primitives…")
    for row in try await PrimitiveBenchmarks(url: url, schema: schema).run() { summary.add(row) }
    print("")
    note("queues…")
    for row in try await QueueBenchmarks(url: url, schema: schema).run() { summary.add(row) }
    print("")
    note("scale…")
    for row in try await ScaleBenchmarks(url: url, schema: schema).run() { summary.add(row) }
    print("")
    print("All figures above from this one run, on one server:")
    print("")
    summary.print()
}
await raw.close()
await embedded?.stop()
