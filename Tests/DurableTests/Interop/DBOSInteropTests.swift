import Durable
import Foundation
import LibPQ
import TestSupport
import Testing

struct InteropGreeting: Codable, Sendable, Equatable {
    var greeting: String
    var letters: Int
    var tags: [String]
}

/// Two steps, a structured result.
struct InteropGreetWorkflow: Workflow {
    static let name = "interop-greet"

    func run(_ ctx: WorkflowContext, _ name: String) async throws -> InteropGreeting {
        let greeting = try await ctx.step("compose-greeting") { "Hello, \(name)!" }
        let letters = try await ctx.step("count-letters") { greeting.filter(\.isLetter).count }
        return InteropGreeting(greeting: greeting, letters: letters, tags: ["swift", "durable"])
    }
}

struct InteropFailure: Error, CustomStringConvertible {
    var description: String
}

/// A step that succeeds, a step that throws (caught), then the body itself throws.
struct InteropFailWorkflow: Workflow {
    static let name = "interop-fail"
    static let stepMessage = "the failing step gave up on purpose"
    static func bodyMessage(_ input: String) -> String { "the interop workflow failed on purpose: \(input)" }

    func run(_ ctx: WorkflowContext, _ input: String) async throws -> Int {
        let one = try await ctx.step("before-failure") { 1 }
        do {
            try await ctx.step("failing-step") { throw InteropFailure(description: Self.stepMessage) }
        } catch let error as DurableError where error.code == .stepFailed {
            // Recorded as the step's error; the workflow goes on to fail on its own.
        }
        if one == 1 { throw InteropFailure(description: Self.bodyMessage(input)) }
        return one
    }
}

/// DBOS Transact 3.4.0's own Python client and CLI read workflows our runtime ran: results, errors, statuses,
/// names and steps. Skipped (not passed) when the dbos virtualenv is absent.
@Suite(
    "DBOS interop: DBOS 3.4.0's client and CLI read our workflows", .tags(.interop), .skippedInFastRuns, .serialized,
    .enabled(
        if: MigrationTestSupport.hasDBOS,
        "needs dbos 3.4.0 in .venv-dbos or DURABLE_DBOS_VENV (scripts/test sets it up)"))
struct DBOSInteropTests {
    typealias Support = MigrationTestSupport

    @Test(
        "DBOSClient and `dbos workflow list/steps/get` see our succeeded and failed workflows",
        arguments: ["dbos", "My \"Odd\" Schema"])
    func clientAndCLIReadOurWorkflows(_ schema: String) async throws {
        let url = try await TestDatabase.fresh("interop").url
        let okID = "interop-ok-\(UUID().uuidString.prefix(8).lowercased())"
        let failedID = "interop-failed-\(UUID().uuidString.prefix(8).lowercased())"
        let expected = InteropGreeting(greeting: "Hello, DBOS!", letters: 9, tags: ["swift", "durable"])
        let configuration = Support.configuration(url: url, schema: schema, executorID: "interop-executor")
        let runtime = Support.makeRuntime(configuration) { runtime in
            runtime.register(InteropGreetWorkflow())
            runtime.register(InteropFailWorkflow())
        }
        try await Support.using(runtime) { runtime in
            #expect(try await runtime.start(InteropGreetWorkflow.self, "DBOS", id: okID).result() == expected)
            do {
                _ = try await runtime.start(InteropFailWorkflow.self, "boom", id: failedID).result()
                Issue.record("the failing workflow succeeded")
            } catch let error as DurableError {
                #expect(
                    error.code == .workflowFailed && error.message.contains(InteropFailWorkflow.bodyMessage("boom")),
                    "\(error)")
            }
        }

        // DBOS's Python client.
        let output = try await Support.python("dbos_client_check.py", [url, schema, okID, failedID])
        #expect(output.status == 0, "\(output)")
        let report = try #require(try Support.parseJSON(output) as? [String: Any], "\(output)")
        #expect(
            report["unexpected"] == nil, "DBOSClient raised: \(report["unexpected"] ?? "") \(report["traceback"] ?? "")"
        )

        // get_result() of the succeeded workflow: the JSON value our runtime recorded.
        let resultData = try JSONSerialization.data(
            withJSONObject: try #require(report["result"]), options: [.fragmentsAllowed])
        #expect(
            (try? JSONDecoder().decode(InteropGreeting.self, from: resultData)) == expected,
            "get_result() returned \(String(decoding: resultData, as: UTF8.self))")

        let status = report["status"] as? [String: Any]
        #expect(status?["workflow_id"] as? String == okID)
        #expect(status?["status"] as? String == "SUCCESS")
        #expect(status?["name"] as? String == InteropGreetWorkflow.name)
        #expect(status?["executor_id"] as? String == "interop-executor")
        #expect(status?["app_version"] as? String == configuration.applicationVersion)
        let decodedInput = "\(status?["input"] ?? "")"
        #expect(decodedInput.contains("DBOS"), "DBOS decodes our input: \(decodedInput)")

        // list_workflows(): both, with status and name.
        let listed = (report["listed"] as? [[String: Any]]) ?? []
        let listedOK = listed.first { $0["workflow_id"] as? String == okID }
        let listedFailed = listed.first { $0["workflow_id"] as? String == failedID }
        #expect(listed.count == 2, "\(listed)")
        #expect(listedOK?["status"] as? String == "SUCCESS")
        #expect(listedOK?["name"] as? String == InteropGreetWorkflow.name)
        #expect(listedFailed?["status"] as? String == "ERROR")
        #expect(listedFailed?["name"] as? String == InteropFailWorkflow.name)
        let listedError = "\(listedFailed?["error"] ?? "")"
        #expect(listedError.contains(InteropFailWorkflow.bodyMessage("boom")), "\(listedFailed ?? [:])")

        // list_workflow_steps(): our step names, in order, with their outputs and errors.
        let steps = (report["steps"] as? [[String: Any]]) ?? []
        #expect(
            steps.compactMap { $0["function_name"] as? String } == ["compose-greeting", "count-letters"], "\(steps)")
        #expect(steps.first?["output"] as? String == "Hello, DBOS!", "\(steps)")
        #expect((steps.last?["output"] as? NSNumber)?.intValue == 9, "\(steps)")
        let ids = steps.compactMap { ($0["function_id"] as? NSNumber)?.intValue }
        #expect(ids.count == 2 && ids[0] < ids[1], "\(steps)")
        let failedSteps = (report["failed_steps"] as? [[String: Any]]) ?? []
        #expect(
            failedSteps.compactMap { $0["function_name"] as? String } == ["before-failure", "failing-step"],
            "\(failedSteps)")
        let failedStepError = "\(failedSteps.last?["error"] ?? "")"
        #expect(failedStepError.contains(InteropFailWorkflow.stepMessage), "\(failedSteps)")

        // get_result() of the failed workflow raises, carrying the Swift error's message.
        let failedError = report["failed_error"] as? [String: Any]
        #expect(
            failedError != nil,
            "get_result() of the failed workflow returned \(report["failed_value"] ?? "nil") instead of raising")
        #expect(
            (failedError?["message"] as? String)?.contains(InteropFailWorkflow.bodyMessage("boom")) == true,
            "\(failedError ?? [:])")

        // DBOS's CLI.
        let list = try await Support.dbosCLI(["workflow", "list", "-s", url, "--schema", schema])
        let listedByCLI = try #require(try Support.parseJSON(list) as? [[String: Any]], "\(list)")
        let cliOK = listedByCLI.first { $0["workflow_id"] as? String == okID }
        let cliFailed = listedByCLI.first { $0["workflow_id"] as? String == failedID }
        #expect(cliOK?["status"] as? String == "SUCCESS", "\(list)")
        #expect(cliOK?["name"] as? String == InteropGreetWorkflow.name, "\(list)")
        #expect(cliFailed?["status"] as? String == "ERROR", "\(list)")
        #expect(cliFailed?["name"] as? String == InteropFailWorkflow.name, "\(list)")

        let stepsOutput = try await Support.dbosCLI(["workflow", "steps", okID, "-s", url, "--schema", schema])
        let stepsByCLI = try #require(try Support.parseJSON(stepsOutput) as? [[String: Any]], "\(stepsOutput)")
        #expect(
            stepsByCLI.compactMap { $0["function_name"] as? String } == ["compose-greeting", "count-letters"],
            "\(stepsOutput)")

        let get = try await Support.dbosCLI(["workflow", "get", failedID, "-s", url, "--schema", schema])
        let gotByCLI = try #require(try Support.parseJSON(get) as? [String: Any], "\(get)")
        #expect(gotByCLI["status"] as? String == "ERROR", "\(get)")
        #expect(gotByCLI["name"] as? String == InteropFailWorkflow.name, "\(get)")
    }

    @Test("DBOSClient.enqueue puts workflows on our queues, a partitioned one included, and gets their results")
    func clientEnqueuesOntoOurQueues() async throws {
        let url = try await TestDatabase.fresh("interop_enqueue").url
        let runtime = Support.makeRuntime(Support.configuration(url: url, schema: "dbos", executorID: "interop-queues"))
        { runtime in
            runtime.register(InteropTripleWorkflow())
            runtime.register(queue: WorkflowQueue("interop-tenants", partitionConcurrency: 1))
            runtime.register(queue: WorkflowQueue("interop-plain"))
        }
        try await Support.using(runtime) { runtime in
            try await runtime.launch()
            let output = try await Support.python(
                "dbos_client_enqueue.py", [url, "dbos", InteropTripleWorkflow.name, "interop-tenants", "interop-plain"])
            #expect(output.status == 0, "\(output)")
            let report = try #require(try Support.parseJSON(output) as? [String: Any], "\(output)")
            #expect(
                report["unexpected"] == nil,
                "DBOSClient raised: \(report["unexpected"] ?? "") \(report["traceback"] ?? "")")
            let results = (report["results"] as? [String: Any]) ?? [:]
            for (index, id) in ["client-enqueued-0", "client-enqueued-1", "client-enqueued-2"].enumerated() {
                #expect((results[id] as? NSNumber)?.intValue == (index + 1) * 3, "\(id): \(results[id] ?? "nil")")
            }
            let rows = try await MessagingHarness(url: url, runtime: runtime).query(
                "SELECT workflow_uuid, queue_name, queue_partition_key, status, executor_id FROM dbos.workflow_status ORDER BY 1"
            )
            #expect(
                rows.rows.map {
                    "\($0.string(0) ?? "") \($0.string(1) ?? "") \($0.string(2) ?? "-") \($0.string(3) ?? "") \($0.string(4) ?? "")"
                } == [
                    "client-enqueued-0 interop-tenants red SUCCESS interop-queues",
                    "client-enqueued-1 interop-tenants blue SUCCESS interop-queues",
                    "client-enqueued-2 interop-plain - SUCCESS interop-queues",
                ])
        }
    }
}

/// Triples its input in a step.
struct InteropTripleWorkflow: Workflow {
    static let name = "interop-triple"
    func run(_ ctx: WorkflowContext, _ value: Int) async throws -> Int {
        try await ctx.step("triple") { value * 3 }
    }
}
