import Durable
import Foundation
import LibPQ

/// What the traveller asked for.
struct Trip: Codable, Sendable {
    var id: String
    var traveller: String
    var flight: String
    var priceCents: Int
}

/// A manager's decision, sent to the workflow as a message.
struct Approval: Codable, Sendable {
    var approver: String
}

enum TripError: Error {
    case noApproval
}

/// What the workflow returns once everything is done.
struct Itinerary: Codable, Sendable {
    var tripID: String
    var seat: String
    var chargeID: String
    var expenseID: String
}

/// The travel story: reserve a flight, charge the card, wait for a manager's approval, file the expense. Each
/// step writes to the demo's own tables, the way a real service would call its airline, payment and expense
/// systems.
struct BookTrip: Workflow {
    static let name = "book-trip"

    /// The "outside world" the steps talk to: tables in the demo's schema.
    let world: TravelSystems
    /// Reports progress to the demo's parent process.
    let say: @Sendable (String) -> Void

    func run(_ ctx: WorkflowContext, _ trip: Trip) async throws -> Itinerary {
        if ctx.isReplaying { say("RESUMED \(ctx.workflowID)") }

        let replayingFlight = ctx.isReplaying
        let seat = try await ctx.step("reserve-flight") {
            try await world.reserveSeat(trip: trip)
        }
        say(replayingFlight ? "REPLAYED reserve-flight \(seat)" : "RESERVED \(seat)")

        let replayingCharge = ctx.isReplaying
        let chargeID = try await ctx.step("charge-card") {
            try await world.chargeCard(trip: trip)
        }
        say(replayingCharge ? "REPLAYED charge-card \(chargeID)" : "CHARGED \(chargeID)")

        // A manager approves the expense; the wait is durable, so it survives the worker being killed.
        say("WAITING approval")
        guard let approval = try await ctx.recv(Approval.self, topic: "approval", timeout: .seconds(120)) else {
            throw TripError.noApproval
        }
        say("APPROVED by \(approval.approver)")

        let expenseID = try await ctx.step("file-expense") {
            try await world.fileExpense(trip: trip)
        }
        say("FILED \(expenseID)")
        return Itinerary(tripID: trip.id, seat: seat, chargeID: chargeID, expenseID: expenseID)
    }
}

/// The demo's stand-in for an airline, a payment provider and an expense system: rows in its own schema.
struct TravelSystems: Sendable {
    let pool: ConnectionPool
    /// The quoted schema holding the demo's tables.
    let schema: String

    func createTables() async throws {
        try await pool.withConnection { connection in
            try await connection.execute(
                """
                CREATE SCHEMA IF NOT EXISTS \(schema);
                CREATE TABLE IF NOT EXISTS \(schema).seats (trip_id text PRIMARY KEY, flight text NOT NULL, seat text NOT NULL);
                CREATE TABLE IF NOT EXISTS \(schema).card_charges (charge_id text PRIMARY KEY, trip_id text NOT NULL, amount_cents int NOT NULL, charged_at timestamptz NOT NULL DEFAULT now());
                CREATE TABLE IF NOT EXISTS \(schema).expenses (expense_id text PRIMARY KEY, trip_id text NOT NULL, amount_cents int NOT NULL);
                """)
        }
    }

    func reserveSeat(trip: Trip) async throws -> String {
        let seat = "\(Int.random(in: 3...40))\(["A", "C", "D", "F"].randomElement()!)"
        try await pool.withConnection { connection in
            try await connection.query(
                "INSERT INTO \(schema).seats (trip_id, flight, seat) VALUES ($1, $2, $3)", [trip.id, trip.flight, seat])
        }
        return seat
    }

    /// Charges the card. Deliberately not idempotent, like many real payment calls: running it twice charges twice.
    func chargeCard(trip: Trip) async throws -> String {
        let chargeID = "ch_" + UUID().uuidString.prefix(8).lowercased()
        try await pool.withConnection { connection in
            try await connection.query(
                "INSERT INTO \(schema).card_charges (charge_id, trip_id, amount_cents) VALUES ($1, $2, $3)",
                [chargeID, trip.id, trip.priceCents])
        }
        return chargeID
    }

    func fileExpense(trip: Trip) async throws -> String {
        let expenseID = "exp_" + UUID().uuidString.prefix(8).lowercased()
        try await pool.withConnection { connection in
            try await connection.query(
                "INSERT INTO \(schema).expenses (expense_id, trip_id, amount_cents) VALUES ($1, $2, $3)",
                [expenseID, trip.id, trip.priceCents])
        }
        return expenseID
    }

    func chargeCount(tripID: String) async throws -> Int {
        try await pool.withConnection { connection in
            try await connection.query("SELECT count(*) FROM \(schema).card_charges WHERE trip_id = $1", [tripID])
                .first?.int(0) ?? -1
        }
    }
}
