import Durable
import EmbeddedPostgres
import Foundation
import Logging
import TestSupport
import Testing

/// A database this process has never reached is a configuration mistake: launch says so within connectTimeout,
/// not after reconnectTimeout's retries. And names too long to index are refused before anything is sent.
@Suite("Launch failures and limits")
struct LaunchFailureTests {
    /// A URL with a password, so the test can check that no error shows it.
    static let password = "pw-\(UUID().uuidString.prefix(8))"

    /// How long a failed launch took, and its error. reconnectTimeout is ten minutes, so a launch that retried
    /// the way an outage is retried would take that long; the bound below only has to tell the two apart.
    func failedLaunch(_ url: String) async -> (error: DurableError?, elapsed: Duration) {
        let runtime = DurableRuntime(
            configuration: DurableConfiguration(
                databaseURL: url, connectTimeout: .seconds(3), reconnectTimeout: .seconds(600)),
            logger: Logger(label: "launch-failure-tests") { _ in SwiftLogNoOpLogHandler() }
        )
        let started = ContinuousClock.now
        defer { Task { await runtime.shutdown() } }
        do {
            try await runtime.launch()
            Issue.record("launch succeeded against \(url)")
            return (nil, started.duration(to: .now))
        } catch {
            return (error as? DurableError, started.duration(to: .now))
        }
    }

    func expectFastClearFailure(_ url: String, sourceLocation: SourceLocation = #_sourceLocation) async {
        let (error, elapsed) = await failedLaunch(url)
        #expect(error?.code == .connectionFailed, "\(String(describing: error))", sourceLocation: sourceLocation)
        #expect(
            error?.message.contains("could not connect to the database") == true, "\(String(describing: error))",
            sourceLocation: sourceLocation)
        #expect(
            !String(describing: error).contains(Self.password), "the error shows the password",
            sourceLocation: sourceLocation)
        // Before the fix this took reconnectTimeout (here 600 s). A slow machine may add seconds, not minutes.
        #expect(elapsed < .seconds(120), "took \(elapsed)", sourceLocation: sourceLocation)
    }

    @Test("a refused port fails launch at once with a clear, redacted error")
    func refusedPort() async throws {
        let port = try FreePort.find()  // free a moment ago: nothing listens on it
        await expectFastClearFailure("postgresql://app:\(Self.password)@127.0.0.1:\(port)/app")
    }

    @Test("a host name that does not resolve fails launch at once")
    func unresolvableHost() async throws {
        await expectFastClearFailure("postgresql://app:\(Self.password)@durable-no-such-host.invalid:5432/app")
    }

    @Test("a database that does not exist on a reachable server fails launch at once")
    func missingDatabase() async throws {
        let existing = try await TestDatabase.fresh("launch_missing").url
        var components = try #require(URLComponents(string: existing))
        components.path += "_absent"
        await expectFastClearFailure(try #require(components.string))
    }

    @Test("IDs, topics and keys are checked against the documented 800-byte limit before anything is sent")
    func lengthLimits() async throws {
        let h = try await MessagingHarness.make(prefix: "limits", executorID: "limits") { $0.register(Nap()) }
        let atLimit = String(repeating: "é", count: 400)  // 800 bytes
        let overLimit = atLimit + "x"
        #expect(try await h.runtime.start(Nap.self, 1, id: atLimit).result() == 1)
        // Typed by the workflow rather than by its output.
        #expect(try await h.runtime.handle(for: atLimit, of: Nap.self).result() == 1)
        for id in [overLimit, String(repeating: "a", count: 1 << 20)] {
            do {
                _ = try await h.runtime.start(Nap.self, 1, id: id)
                Issue.record("a \(id.utf8.count)-byte workflow ID was accepted")
            } catch let error as DurableError {
                // Before: a 1 MB ID went to the server and came back as databaseError, SQLSTATE 54000.
                #expect(error.code == .invalidArgument && error.message.contains("800 bytes"), "\(error)")
            }
        }
        #expect(try await h.query("SELECT count(*) FROM dbos.workflow_status").first?.int(0) == 1)
        do {
            try await h.runtime.send(to: atLimit, topic: overLimit, "hello")
            Issue.record("an 801-byte topic was accepted")
        } catch let error as DurableError {
            #expect(
                error.code == .invalidArgument && error.message.contains("topic")
                    && error.message.contains("800 bytes"), "\(error)")
        }
        await h.runtime.shutdown()
    }
}
