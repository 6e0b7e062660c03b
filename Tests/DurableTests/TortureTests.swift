import Foundation
import Testing

/// The short setting of the torture run (Benchmarks/DurableTorture), as CI runs it: worker processes SIGKILLed
/// at random, connections terminated and — on the throwaway cluster — PostgreSQL restarted with `-m immediate`.
@Suite("Torture run (short)")
struct TortureTests {
    @Test("every workflow finishes, transactional effects exactly once, nothing hangs")
    func shortTorture() async throws {
        let executable = URL(fileURLWithPath: ChildWorker.executable).deletingLastPathComponent().appendingPathComponent("durable-torture").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = ["--workflows", "300", "--steps", "4", "--workers", "2", "--seconds", "10", "--step-ms", "400"]
        var environment = ProcessInfo.processInfo.environment
        if environment["DATABASE_URL"] != nil {
            // Against a user's server: a database of its own (and no Postgres restarts).
            environment["DATABASE_URL"] = try await SharedDatabaseURL.fresh("torture")
        }
        process.environment = environment
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = PipeReading.readToEnd(output.fileHandleForReading)
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        #expect(process.terminationStatus == 0, "torture output:\n\(text)")
        #expect(text.contains("6 passed, 0 failed"), "torture output:\n\(text)")
    }
}
