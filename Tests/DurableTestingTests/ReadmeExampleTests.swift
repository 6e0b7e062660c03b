import Durable
import DurableTesting
import Foundation
import Testing

// The README's "Testing your workflows" example, verbatim between the markers, with the workflow of its "Using
// it" section and the fakes it assumes. If this stops compiling or passing, the README is wrong.

struct Trip: Codable, Sendable {
    var id: String
    var card: String
    var price: Int
}

struct Itinerary: Codable, Sendable {
    var seat: String
    var charge: String
}

protocol Airline: Sendable {
    func reserve(_ trip: Trip) async throws -> String
}

protocol Payments: Sendable {
    func charge(_ card: String, _ price: Int) async throws -> String
}

struct BookTrip: Workflow {
    static let name = "book-trip"
    let airline: Airline
    let payments: Payments

    func run(_ ctx: WorkflowContext, _ trip: Trip) async throws -> Itinerary {
        let seat = try await ctx.step("reserve-flight") { try await airline.reserve(trip) }
        let charge = try await ctx.step("charge-card") { try await payments.charge(trip.card, trip.price) }
        return Itinerary(seat: seat, charge: charge)
    }
}

struct FakeAirline: Airline {
    func reserve(_ trip: Trip) async throws -> String { "15F" }
}

actor FakePayments: Payments {
    private(set) var charges = 0
    func charge(_ card: String, _ price: Int) async throws -> String {
        charges += 1
        return "ch_\(charges)"
    }
}

// README example begins
@Test func bookingSurvivesACrashAfterTheCharge() async throws {
    let trip = Trip(id: "t1", card: "4242", price: 420)
    let payments = FakePayments()
    let workflow = BookTrip(airline: FakeAirline(), payments: payments)
    try await withTestRuntime(register: { $0.register(workflow) }) { runtime in
        // An ordinary run; a workflow that never finishes fails the test instead of hanging it.
        let itinerary = try await runtime.start(BookTrip.self, trip).result(timeout: .seconds(10))
        #expect(itinerary.seat == "15F")

        // Stop a run right after step 2 (the charge) as a crash would, restart, and check the replay.
        let report = try await runtime.crashTest(BookTrip.self, trip, crashAfterStep: 2)
        #expect(report.servedFromCheckpoints.map(\.name) == ["reserve-flight", "charge-card"])
        #expect(try report.output.seat == "15F")
        #expect(await payments.charges == 2)  // one per workflow: the replay did not charge again

        // Every crash point in turn: before the first step, after step 1, after step 2.
        for report in try await runtime.crashTestEveryStep(BookTrip.self, trip) {
            #expect(try report.output.charge.hasPrefix("ch_"), "crash after step \(report.crashAfterStep)")
        }
    }
}
// README example ends

@Test("the README shows the example above, as it is here")
func readmeShowsTheExample() throws {
    let here = URL(fileURLWithPath: #filePath)
    let root = here.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let source = try String(contentsOf: here, encoding: .utf8)
    let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
    let begins = try #require(source.range(of: "// README example begins\n"))
    let ends = try #require(source.range(of: "// README example ends\n", range: begins.upperBound..<source.endIndex))
    let example = String(source[begins.upperBound..<ends.lowerBound])
    #expect(
        readme.contains("import Durable\nimport DurableTesting\nimport Testing\n\n" + example + "```"),
        "README.md's \"Testing your workflows\" example differs from this file's")
}
