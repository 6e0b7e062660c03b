import Durable
import Foundation
import LibPQ
import Logging

/// The worker process: a tiny "travel service" that registers the workflow, launches the durable runtime (which
/// resumes anything left pending by a previous, killed worker), and books the trip if asked to.
enum Worker {
    static func run(url: String, tripID: String, startTrip: Bool) async -> Int32 {
        var logger = Logger(label: "travel-service")
        logger.logLevel = .warning
        let say: @Sendable (String) -> Void = { line in
            FileHandle.standardOutput.write(Data((line + "\n").utf8))
        }
        let pool = ConnectionPool(
            configuration: PGConfiguration(connectionString: ConnectionString(url)), maxConnections: 2, logger: logger)
        let world = TravelSystems(pool: pool, schema: SQLIdentifier.quote(Demo.appSchema))
        let durable = DurableRuntime(
            configuration: DurableConfiguration(
                databaseURL: url, schema: Demo.systemSchema, executorID: "travel-service-1"),
            logger: logger
        )
        durable.register(BookTrip(world: world, say: say))
        do {
            try await world.createTables()
            try await durable.launch()  // recovery of pending workflows happens here
            say("LAUNCHED")
            let handle: WorkflowHandle<Itinerary>
            if startTrip {
                let trip = Trip(id: tripID, traveller: "Ada", flight: "DL 1234 SFO→JFK", priceCents: 42_000)
                handle = try await durable.start(BookTrip.self, trip, id: tripID)
            } else {
                handle = durable.handle(for: tripID)
            }
            let itinerary = try await handle.result()
            say("DONE seat \(itinerary.seat), charge \(itinerary.chargeID), expense \(itinerary.expenseID)")
            await durable.shutdown()
            await pool.close()
            return 0
        } catch {
            say("FAILED \(error)")
            await durable.shutdown()
            await pool.close()
            return 1
        }
    }
}
