import EmbeddedPostgres
import Foundation
import TestSupport
import Testing

/// The short setting of the torture run (Benchmarks/DurableTorture), as CI runs it: worker processes SIGKILLed
/// at random, connections terminated and — on the throwaway cluster — PostgreSQL restarted with `-m immediate`.
// Serialized: each case starts a PostgreSQL cluster of its own, and two initdb runs at the start of the whole
// test run add to the load every suite's start-up already puts on the machine.
@Suite("Torture run (short)", .tags(.crash, .slow), .skippedInFastRuns, .serialized)
struct TortureTests {
    /// Without takeover, killed workers come back under their own executor IDs and recover their workflows; with
    /// it, they come back under new IDs and the others take the dead ones' workflows over (queued ones go back to
    /// the queue), while Postgres restarts make live workers look silent to each other now and then.
    @Test("every workflow finishes, transactional effects exactly once, nothing hangs", arguments: [nil, 3_000])
    func shortTorture(takeoverMilliseconds: Int?) async throws {
        let executable = BuiltExecutable.path("durable-torture")
        let arguments =
            ["--workflows", "300", "--steps", "4", "--workers", "2", "--seconds", "10", "--step-ms", "400"]
            + (takeoverMilliseconds.map { ["--takeover-ms", String($0)] } ?? [])
        var environment = ProcessInfo.processInfo.environment
        if environment["DATABASE_URL"] != nil {
            // Against a user's server: a database of its own (and no Postgres restarts).
            environment["DATABASE_URL"] = try await TestDatabase.fresh("torture").url
        }
        let process = try ChildProcess(executable, arguments, environment: environment, standardError: .inherit)
        let output = process.standardOutput!
        // Read on a Dispatch thread: the read blocks until the run ends.
        let data = await PipeReading.readToEnd(output)
        let ended = await process.exited()
        let text = String(decoding: data, as: UTF8.self)
        #expect(ended.succeeded, "torture \(ended); output:\n\(text)")
        #expect(text.contains("6 passed, 0 failed"), "torture output:\n\(text)")
    }
}
