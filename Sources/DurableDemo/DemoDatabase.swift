import Durable
import EmbeddedPostgres
import Foundation
import LibPQ
import Logging

/// The demo's database: `DATABASE_URL` if set, else a throwaway local Postgres removed at the end.
struct DemoDatabase: Sendable, CustomStringConvertible {
    let url: String
    let embedded: EmbeddedPostgres?

    static func open() async throws -> DemoDatabase {
        if let external = ProcessInfo.processInfo.environment["DATABASE_URL"], !external.isEmpty {
            return DemoDatabase(url: external, embedded: nil)
        }
        let server = try await EmbeddedPostgres.start()
        return DemoDatabase(url: server.url, embedded: server)
    }

    var description: String {
        if let embedded { return "throwaway Postgres on 127.0.0.1:\(embedded.port) (no DATABASE_URL set)" }
        return "DATABASE_URL \(ConnectionString(url).redacted)"
    }

    func close() async {
        await embedded?.stop()
    }

    /// Sends the manager's approval to the waiting workflow, from this process, as any service could: a runtime in
    /// client mode, which runs no workflows and so never takes the worker's.
    func approve(tripID: String) async throws {
        var logger = Logger(label: "demo-manager")
        logger.logLevel = .warning
        let manager = DurableRuntime(
            configuration: DurableConfiguration(databaseURL: url, schema: Demo.systemSchema, mode: .client),
            logger: logger
        )
        try await manager.send(to: tripID, topic: "approval", Approval(approver: "Grace"))
        await manager.shutdown()
    }

    /// Prints, from the database itself, what happened to the trip.
    func report(tripID: String) async throws {
        let pool = ConnectionPool(
            configuration: PGConfiguration(connectionString: ConnectionString(url)), maxConnections: 1,
            logger: Logger(label: "demo"))
        let system = SQLIdentifier.quote(Demo.systemSchema)
        let app = SQLIdentifier.quote(Demo.appSchema)
        let (status, steps, charges) = try await pool.withConnection { connection in
            let status = try await connection.query(
                "SELECT status, recovery_attempts FROM \(system).workflow_status WHERE workflow_uuid = $1", [tripID])
            let steps = try await connection.query(
                "SELECT function_id, function_name, output FROM \(system).operation_outputs WHERE workflow_uuid = $1 ORDER BY function_id",
                [tripID])
            let charges = try await connection.query(
                "SELECT charge_id FROM \(app).card_charges WHERE trip_id = $1", [tripID])
            return (status, steps, charges)
        }
        await pool.close()
        print("\nFrom the database:")
        let state = status.first?.string(0) ?? "missing"
        print("  workflow \(tripID): \(state), started \(status.first?.int(1) ?? 0) times (1 run + recoveries)")
        for step in steps.rows {
            print("  step \(step.int(0) ?? 0) \(step.string(1) ?? "?") -> \(step.string(2) ?? "null")")
        }
        print("  card charges for \(tripID): \(charges.rows.count)")
        guard state == "SUCCESS", charges.rows.count == 1 else {
            throw DemoError(
                "expected one charge and a SUCCESS workflow, found \(charges.rows.count) charge(s) and \(state)")
        }
        print("\nThe card was charged exactly once and the trip finished, despite two kill -9s along the way.")
    }
}
