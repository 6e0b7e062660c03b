import Durable
import EmbeddedPostgres
import Foundation
import LibPQ
import Logging

/// The demo: book a trip in a worker process, SIGKILL it right after the card is charged, start a new worker,
/// and show from the database that the trip finished and the card was charged exactly once.
@main
enum Demo {
    /// Where the demo keeps the workflow tables (DBOS's schema layout, under its own name so a real `dbos`
    /// schema in the user's database is left alone).
    static let systemSchema = "durable_demo"
    /// Where the demo's stand-in airline, payment and expense systems keep their rows.
    static let appSchema = "durable_demo_travel"

    static func main() async {
        let arguments = CommandLine.arguments
        if arguments.count >= 4, arguments[1] == "worker" {
            exit(
                await Worker.run(
                    url: arguments[2], tripID: arguments[3], startTrip: arguments.count > 4 && arguments[4] == "--start"
                ))
        }
        print("Durable demo: a trip booking that survives kill -9\n")
        var database: DemoDatabase?
        do {
            database = try await DemoDatabase.open()
            try await tellTheStory(database!)
            await database?.close()
        } catch {
            FileHandle.standardError.write(Data("demo failed: \(error)\n".utf8))
            await database?.close()
            exit(1)
        }
    }

    static func tellTheStory(_ database: DemoDatabase) async throws {
        let clock = ContinuousClock()
        let began = clock.now
        func line(_ text: String) {
            let elapsed = began.duration(to: clock.now)
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            print(String(format: "  [%5.2fs] ", seconds) + text)
        }

        line("database: \(database.description)")

        let tripID = "trip-" + String(UUID().uuidString.prefix(8)).lowercased()
        let executable = try selfExecutable()

        // Worker 1 books the trip and is killed right after the card is charged.
        let first = try DemoWorker(executable: executable, arguments: ["worker", database.url, tripID, "--start"])
        line("worker 1 started (pid \(first.pid)); booking \(tripID)")
        var killed = false
        for await output in first.lines {
            if output.hasPrefix("RESERVED ") {
                line("worker 1: reserved seat \(output.dropFirst(9)) on DL 1234  (step 1 checkpointed)")
            } else if output.hasPrefix("CHARGED ") {
                line("worker 1: charged the card $420.00, \(output.dropFirst(8))  (step 2 checkpointed)")
                await first.killHard()
                line("kill -9 worker 1, right after the charge")
                killed = true
                break
            } else if output.hasPrefix("FAILED ") {
                throw DemoError("worker 1 failed: \(output.dropFirst(7))")
            }
        }
        guard killed else { throw DemoError("worker 1 ended before charging the card") }

        // Worker 2 is the same service starting again: on launch it resumes the pending trip, which now waits
        // for a manager's approval. It is killed again while waiting.
        let second = try DemoWorker(executable: executable, arguments: ["worker", database.url, tripID])
        line("worker 2 started (pid \(second.pid)); on launch it resumes pending workflows")
        var killedWhileWaiting = false
        for await output in second.lines {
            if describeReplay(output, worker: 2, line) { continue }
            if output.hasPrefix("WAITING ") {
                line("worker 2: waiting for the manager's approval (a durable wait: its deadline is checkpointed)")
                try await Task.sleep(for: .milliseconds(300))
                await second.killHard()
                line("kill -9 worker 2 while it waits")
                killedWhileWaiting = true
                break
            } else if output.hasPrefix("FAILED ") {
                throw DemoError("worker 2 failed: \(output.dropFirst(7))")
            }
        }
        guard killedWhileWaiting else { throw DemoError("worker 2 ended before waiting for the approval") }

        // Worker 3 resumes the wait; the manager approves from another process, and the trip finishes.
        let third = try DemoWorker(executable: executable, arguments: ["worker", database.url, tripID])
        line("worker 3 started (pid \(third.pid))")
        var finished = false
        for await output in third.lines {
            if describeReplay(output, worker: 3, line) { continue }
            if output.hasPrefix("WAITING ") {
                line("worker 3: still waiting for the approval, after two kills")
                try await database.approve(tripID: tripID)
                line("manager: approved \(tripID) (a message sent from this demo process)")
            } else if output.hasPrefix("APPROVED ") {
                line("worker 3: the approval arrived, \(output.dropFirst(9))")
            } else if output.hasPrefix("FILED ") {
                line("worker 3: filed the expense, \(output.dropFirst(6))  (step checkpointed)")
            } else if output.hasPrefix("DONE ") {
                line("worker 3: \(tripID) finished: \(output.dropFirst(5))")
                finished = true
            } else if output.hasPrefix("FAILED ") {
                throw DemoError("worker 3 failed: \(output.dropFirst(7))")
            }
        }
        await third.process.exited()
        guard finished else { throw DemoError("worker 3 ended without finishing the trip") }

        try await database.report(tripID: tripID)
    }

    /// Prints the lines a resumed worker says about checkpoints it replayed; true if `output` was one of them.
    static func describeReplay(_ output: String, worker: Int, _ line: (String) -> Void) -> Bool {
        if output.hasPrefix("RESUMED ") {
            line("worker \(worker): resumed the trip from its last checkpoint")
            return true
        }
        if output.hasPrefix("REPLAYED ") {
            let parts = output.split(separator: " ")
            line("worker \(worker): \(parts[1]) served from its checkpoint (\(parts[2])), not run again")
            return true
        }
        return false
    }

    static func selfExecutable() throws -> String {
        let path = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        return path
    }
}

struct DemoError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
