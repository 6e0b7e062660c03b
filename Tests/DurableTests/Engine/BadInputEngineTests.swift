import Durable
import Foundation
import LibPQ
import TestSupport
import Testing

/// Wrong calls fail clearly and early; damaged or oversized rows fail only their own workflow, never the process
/// or the other workflows recovered with it.
@Suite("BadInput: arguments, registrations, damaged and oversized rows")
struct BadInputEngineTests {
    func launched(_ prefix: String, maxPayloadBytes: Int = 32 * 1024 * 1024) async throws -> (
        TestDatabase, DurableRuntime
    ) {
        let database = try await TestDatabase.fresh(prefix)
        let runtime = makeEngineRuntime(
            database, executor: "bad-input", maxPayloadBytes: maxPayloadBytes, register: registerEngineFixtures)
        try await runtime.launch()
        return (database, runtime)
    }

    func workflowCount(_ database: TestDatabase) async throws -> String? {
        try await database.value("SELECT count(*) FROM dbos.workflow_status")
    }

    // MARK: - Arguments

    @Test("an empty workflow ID, a NUL in the ID, or a non-positive timeout is invalidArgument, and nothing is written")
    func invalidArguments() async throws {
        let (database, runtime) = try await launched("bad_args")
        let input = HoldInput(steps: 1, holdAfter: nil)
        let empty = await expectDurableError(.invalidArgument) {
            try await runtime.start(EngineCounted.self, input, id: "")
        }
        #expect(empty?.message.contains("empty") == true)
        await expectDurableError(.invalidArgument) { try await runtime.start(EngineCounted.self, input, id: "a\0b") }
        await expectDurableError(.invalidArgument) {
            try await runtime.start(EngineCounted.self, input, id: "t", timeout: .zero)
        }
        await expectDurableError(.invalidArgument) {
            try await runtime.start(EngineCounted.self, input, id: "t", timeout: .seconds(-1))
        }
        #expect(try await workflowCount(database) == "0")
        // The runtime is unharmed.
        #expect(try await runtime.start(EngineCounted.self, input, id: uniqueID("fine")).result() == 1)
        await runtime.shutdown()
    }

    @Test("starting a workflow that is not registered is workflowNotRegistered, and nothing is written")
    func unregisteredWorkflow() async throws {
        let database = try await TestDatabase.fresh("bad_unregistered")
        let runtime = makeEngineRuntime(database, executor: "bad-input") { $0.register(EngineCounted()) }
        try await runtime.launch()
        let error = await expectDurableError(.workflowNotRegistered) {
            try await runtime.start(EngineOther.self, HoldInput(steps: 1, holdAfter: nil), id: "nobody")
        }
        #expect(error?.message.contains("engine-other") == true)
        #expect(try await workflowCount(database) == "0")
        await runtime.shutdown()
    }

    @Test("two workflows under one durable name make launch (and so start) throw invalidRegistration")
    func duplicateRegistration() async throws {
        let database = try await TestDatabase.fresh("bad_duplicate")
        // Two different types claiming one name: recovery could not know which code to run.
        struct Impostor: Workflow {
            static let name = EngineCounted.name
            func run(_ ctx: WorkflowContext, _ input: HoldInput) async throws -> Int { -1 }
        }
        let runtime = makeEngineRuntime(database, executor: "bad-input") { runtime in
            runtime.register(EngineCounted())
            runtime.register(Impostor())
        }
        let error = await expectDurableError(.invalidRegistration) { try await runtime.launch() }
        #expect(error?.message.contains(EngineCounted.name) == true)
        // Every later attempt says the same; nothing ever runs.
        await expectDurableError(.invalidRegistration) {
            try await runtime.start(EngineCounted.self, HoldInput(steps: 1, holdAfter: nil), id: "never")
        }
        await runtime.shutdown()

        struct Nameless: Workflow {
            static let name = ""
            func run(_ ctx: WorkflowContext, _ input: Int) async throws -> Int { input }
        }
        let nameless = makeEngineRuntime(database, executor: "bad-input") { $0.register(Nameless()) }
        await expectDurableError(.invalidRegistration) { try await nameless.launch() }
        await nameless.shutdown()
    }

    // MARK: - Damaged rows

    /// Starts two held workflows (held after their first step), interrupts them with a shutdown, lets `damage`
    /// change the rows of the first, and recovers both in a new runtime. Returns their IDs.
    func recoverAfterDamage(
        _ database: TestDatabase,
        damage: (String) async throws -> Void
    ) async throws -> (damaged: String, healthy: String, runtime: DurableRuntime) {
        let damaged = uniqueID("damaged")
        let healthy = uniqueID("healthy")
        let first = makeEngineRuntime(database, executor: "damage", register: registerEngineFixtures)
        try await first.launch()
        for id in [damaged, healthy] {
            _ = try await first.start(EngineCounted.self, HoldInput(steps: 2, holdAfter: 1), id: id)
        }
        for id in [damaged, healthy] { #expect(await EngineGates.shared.waitForArrival(id)) }
        await first.shutdown()
        try await damage(damaged)
        for id in [damaged, healthy] { EngineGates.shared.open(id) }
        let second = makeEngineRuntime(database, executor: "damage", register: registerEngineFixtures)
        try await second.launch()
        return (damaged, healthy, second)
    }

    @Test(
        "a damaged step checkpoint fails only its own workflow, with corruptedCheckpoint",
        .serialized,
        arguments: [
            "UPDATE dbos.operation_outputs SET output = '{not json' WHERE workflow_uuid = $1 AND function_id = 1",
            "UPDATE dbos.operation_outputs SET output = '\"one\"' WHERE workflow_uuid = $1 AND function_id = 1",
            "UPDATE dbos.operation_outputs SET output = NULL WHERE workflow_uuid = $1 AND function_id = 1",
            "UPDATE dbos.operation_outputs SET serialization = 'py_pickle' WHERE workflow_uuid = $1 AND function_id = 1",
        ])
    func corruptedCheckpoint(damage: String) async throws {
        let database = try await TestDatabase.fresh("bad_checkpoint")
        let (damaged, healthy, runtime) = try await recoverAfterDamage(database) { id in
            let changed = try await database.query(damage, [id])
            #expect(changed.affectedRows == 1)
        }
        #expect(try await runtime.handle(for: healthy, resultType: Int.self).result() == 3)
        let error = await expectDurableError(.corruptedCheckpoint) {
            try await runtime.handle(for: damaged, resultType: Int.self).result()
        }
        #expect(error?.message.contains("step 1 's-1'") == true, "\(String(describing: error))")
        #expect(try await database.status(damaged) == "ERROR")
        #expect(try await database.status(healthy) == "SUCCESS")
        #expect(try await database.workflowError(damaged)?["code"] as? String == "corruptedCheckpoint")
        // The damaged workflow went no further: its step 2 never ran; the healthy one's ran once.
        #expect(RunCounts.count("step:\(damaged):2") == 0)
        #expect(RunCounts.count("step:\(healthy):2") == 1)
        #expect(try await database.steps(damaged).count == 1)
        // And the process is fine: it still runs new work.
        #expect(
            try await runtime.start(EngineCounted.self, HoldInput(steps: 1, holdAfter: nil), id: uniqueID("after"))
                .result() == 1)
        await runtime.shutdown()
    }

    @Test("a body that catches a corrupted-checkpoint error still ends ERROR")
    func corruptedCheckpointCannotBeSwallowed() async throws {
        let database = try await TestDatabase.fresh("bad_swallow")
        let id = uniqueID("swallow")
        let first = makeEngineRuntime(database, executor: "swallow") { $0.register(EngineRenamable(prefix: "same")) }
        try await first.launch()
        _ = try await first.start(EngineRenamable.self, true, id: id)
        #expect(await EngineGates.shared.waitForArrival(id))
        await first.shutdown()
        try await database.query("UPDATE dbos.operation_outputs SET output = '[[[' WHERE workflow_uuid = $1", [id])
        EngineGates.shared.open(id)
        let second = makeEngineRuntime(database, executor: "swallow") { $0.register(EngineRenamable(prefix: "same")) }
        try await second.launch()
        await expectDurableError(.corruptedCheckpoint) {
            try await second.handle(for: id, resultType: String.self).result()
        }
        #expect(try await database.workflowError(id)?["code"] as? String == "corruptedCheckpoint")
        #expect(RunCounts.count("renamable:\(id):same") == 1)
        await second.shutdown()
    }

    @Test(
        "a recorded input that does not decode fails only its own workflow",
        .serialized,
        arguments: [
            "UPDATE dbos.workflow_input SET inputs = 'garbage, not JSON' WHERE workflow_uuid = $1",
            "UPDATE dbos.workflow_input SET inputs = '{\"positionalArgs\":[\"a string\"],\"namedArgs\":{}}' WHERE workflow_uuid = $1",
            "UPDATE dbos.workflow_input SET inputs = '{\"positionalArgs\":[],\"namedArgs\":{}}' WHERE workflow_uuid = $1",
            "UPDATE dbos.workflow_input SET inputs = '{\"namedArgs\":{}}' WHERE workflow_uuid = $1",
            "DELETE FROM dbos.workflow_input WHERE workflow_uuid = $1",
        ])
    func undecodableInput(damage: String) async throws {
        let database = try await TestDatabase.fresh("bad_input")
        let (damaged, healthy, runtime) = try await recoverAfterDamage(database) { id in
            let changed = try await database.query(damage, [id])
            #expect(changed.affectedRows == 1)
        }
        #expect(try await runtime.handle(for: healthy, resultType: Int.self).result() == 3)
        let error = await expectDurableError(.corruptedCheckpoint) {
            try await runtime.handle(for: damaged, resultType: Int.self).result()
        }
        #expect(error?.message.contains("input") == true, "\(String(describing: error))")
        #expect(try await database.status(damaged) == "ERROR")
        #expect(try await database.workflowError(damaged)?["code"] as? String == "corruptedCheckpoint")
        // The body never ran on recovery: the input is decoded before it.
        #expect(RunCounts.count("body:\(damaged)") == 1)
        #expect(RunCounts.count("body:\(healthy)") == 2)
        await runtime.shutdown()
    }

    @Test("a pending workflow's input damaged before its first step fails only that workflow")
    func undecodableStructInput() async throws {
        let database = try await TestDatabase.fresh("bad_struct_input")
        let first = makeEngineRuntime(database, executor: "shipments", register: registerEngineFixtures)
        try await first.launch()
        let broken = uniqueID("broken")
        let fine = uniqueID("fine")
        _ = try await first.start(EngineShipmentCount.self, Shipment(to: "Oslo", count: 4), id: broken)
        _ = try await first.start(EngineShipmentCount.self, Shipment(to: "Rome", count: 5), id: fine)
        for id in [broken, fine] { #expect(await EngineGates.shared.waitForArrival(id)) }
        await first.shutdown()
        // Valid JSON, wrong shape: "count" is missing.
        try await database.query(
            #"UPDATE dbos.workflow_input SET inputs = '{"positionalArgs":[{"to":"Oslo"}],"namedArgs":{}}' WHERE workflow_uuid = $1"#,
            [broken])
        for id in [broken, fine] { EngineGates.shared.open(id) }
        let second = makeEngineRuntime(database, executor: "shipments", register: registerEngineFixtures)
        try await second.launch()
        #expect(try await second.handle(for: fine, resultType: Int.self).result() == 5)
        let error = await expectDurableError(.corruptedCheckpoint) {
            try await second.handle(for: broken, resultType: Int.self).result()
        }
        #expect(error?.message.contains("count") == true)
        #expect(try await database.workflowError(broken)?["code"] as? String == "corruptedCheckpoint")
        #expect(try await database.steps(broken).isEmpty)
        await second.shutdown()
    }

    // MARK: - Payload limits

    @Test("a step result above maxPayloadBytes throws payloadTooLarge from the step and records nothing")
    func hugeStepOutput() async throws {
        let (database, runtime) = try await launched("bad_huge_step", maxPayloadBytes: 4096)
        let id = uniqueID("huge-step")
        #expect(try await runtime.start(EngineBigStep.self, 10_000, id: id).result() == "payloadTooLarge|1")
        #expect(RunCounts.count("big:\(id)") == 1)
        #expect(try await database.steps(id).map { "\($0.id):\($0.name)" } == ["2:after"])
        // Just under the limit is fine.
        let small = uniqueID("small-step")
        #expect(try await runtime.start(EngineBigStep.self, 3_000, id: small).result() == "ok:3000|1")
        await runtime.shutdown()
    }

    @Test("a workflow input or result above maxPayloadBytes is payloadTooLarge")
    func hugeInputAndResult() async throws {
        let (database, runtime) = try await launched("bad_huge_io", maxPayloadBytes: 4096)
        let big = String(repeating: "z", count: 10_000)
        let error = await expectDurableError(.payloadTooLarge) {
            try await runtime.start(EngineEcho.self, big, id: "big-input")
        }
        #expect(error?.message.contains("4096") == true)
        #expect(try await workflowCount(database) == "0")

        // An input under the limit whose result is over it: the workflow ends ERROR with payloadTooLarge.
        let id = uniqueID("big-result")
        struct Amplify: Workflow {
            static let name = "engine-amplify"
            func run(_ ctx: WorkflowContext, _ size: Int) async throws -> String { String(repeating: "a", count: size) }
        }
        await runtime.shutdown()
        let amplifying = makeEngineRuntime(database, executor: "bad-input", maxPayloadBytes: 4096) {
            $0.register(Amplify())
        }
        await expectDurableError(.payloadTooLarge) { try await amplifying.start(Amplify.self, 10_000, id: id).result() }
        #expect(try await database.status(id) == "ERROR")
        #expect(try await database.workflowError(id)?["code"] as? String == "payloadTooLarge")
        #expect(
            try await database.value("SELECT output FROM dbos.workflow_output WHERE workflow_uuid = $1", [id]) == nil)
        await amplifying.shutdown()
    }

    @Test("a recorded step or input above the recovering process's limit fails only that workflow, without loading it")
    func oversizedOnRecovery() async throws {
        let database = try await TestDatabase.fresh("bad_oversized")
        let generous = makeEngineRuntime(
            database, executor: "oversized", maxPayloadBytes: 1 << 20, register: registerEngineFixtures)
        try await generous.launch()
        let bigStep = uniqueID("big-step")
        let bigInput = uniqueID("big-input")
        let small = uniqueID("small")
        _ = try await generous.start(EngineBigThenHold.self, 200_000, id: bigStep)
        _ = try await generous.start(
            EngineShipmentCount.self, Shipment(to: String(repeating: "far ", count: 50_000), count: 1), id: bigInput)
        _ = try await generous.start(EngineBigThenHold.self, 10, id: small)
        for id in [bigStep, bigInput, small] { #expect(await EngineGates.shared.waitForArrival(id)) }
        await generous.shutdown()
        for id in [bigStep, bigInput, small] { EngineGates.shared.open(id) }

        let strict = makeEngineRuntime(
            database, executor: "oversized", maxPayloadBytes: 4096, register: registerEngineFixtures)
        try await strict.launch()
        #expect(try await strict.handle(for: small, resultType: Int.self).result() == 10)
        for id in [bigStep, bigInput] {
            await expectDurableError(.payloadTooLarge) {
                try await strict.handle(for: id, resultType: Int.self).result()
            }
            #expect(try await database.status(id) == "ERROR")
            #expect(try await database.workflowError(id)?["code"] as? String == "payloadTooLarge", "\(id)")
        }
        #expect(RunCounts.count("big:\(bigStep)") == 1)  // not run again
        #expect(RunCounts.count("body:\(bigInput)") == 1)  // never started again
        await strict.shutdown()
    }

    @Test("a payload limit under 1024 bytes is rejected at launch")
    func tinyPayloadLimit() async throws {
        let database = try await TestDatabase.fresh("bad_limit")
        let runtime = makeEngineRuntime(database, executor: "bad-input", maxPayloadBytes: 100) { _ in }
        let error = await expectDurableError(.invalidConfiguration) { try await runtime.launch() }
        #expect(error?.message.contains("maxPayloadBytes") == true)
        await runtime.shutdown()
    }
}
