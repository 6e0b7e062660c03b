import Durable
import LibPQ

/// One recorded durable operation of a workflow: a row of `operation_outputs`.
public struct StepRecord: Sendable, Hashable, CustomStringConvertible {
    /// Its number: the position among the workflow's durable operations, from 1 (DBOS's `function_id`).
    public var number: Int
    /// Its durable name: the name given to `step` or `transaction`, or the operation's own (`DBOS.sleep`,
    /// `DBOS.recv`, `DBOS.send`, a child workflow's name…).
    public var name: String
    /// Whether it recorded an error rather than a result.
    public var failed: Bool

    /// A record, for comparing with the ones a report holds.
    public init(number: Int, name: String, failed: Bool = false) {
        self.number = number
        self.name = name
        self.failed = failed
    }

    /// `3 charge-card`, with `(failed)` after a step that recorded an error.
    public var description: String { "\(number) \(name)\(failed ? " (failed)" : "")" }

    /// The recorded operations of `workflowID`, in order, read on a connection of its own.
    static func load(_ workflowID: String, configuration: DurableConfiguration) async throws -> [StepRecord] {
        let connection: PGConnection
        do {
            connection = try await PGConnection.connect(
                PGConfiguration(
                    connectionString: ConnectionString(configuration.databaseURL),
                    connectTimeoutSeconds: max(2, Int(configuration.connectTimeout.components.seconds)),
                    applicationName: "durable-testing",
                    usePreparedStatements: false
                ))
        } catch let error as PGError {
            throw DurableError(
                .connectionFailed, "could not read the recorded steps: \(error)", workflowID: workflowID,
                sqlState: error.sqlState)
        }
        do {
            let rows = try await connection.query(TestingStatements.steps(of: workflowID, schema: configuration.schema))
                .decode(Int.self, String.self, Bool.self)
            await connection.close()
            return rows.map { StepRecord(number: $0.0, name: $0.1, failed: $0.2) }
        } catch {
            await connection.close()
            let sqlState = (error as? PGError)?.sqlState
            throw DurableError(
                .databaseError, "could not read the recorded steps: \(error)", workflowID: workflowID,
                sqlState: sqlState)
        }
    }
}
