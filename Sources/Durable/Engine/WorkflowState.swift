import Foundation

/// The status of a workflow, as stored in `workflow_status.status` with DBOS's strings.
public enum WorkflowState: String, Sendable, Codable, CaseIterable {
    /// Running, or waiting to be resumed after a crash.
    case pending = "PENDING"
    /// Waiting on a queue.
    case enqueued = "ENQUEUED"
    /// Waiting on a queue until a start time.
    case delayed = "DELAYED"
    /// Finished and returned a result.
    case success = "SUCCESS"
    /// Finished by throwing an error.
    case error = "ERROR"
    /// Stopped by a cancellation or a timeout.
    case cancelled = "CANCELLED"
    /// Recovered more often than allowed, and set aside (a dead letter).
    case maxRecoveryAttemptsExceeded = "MAX_RECOVERY_ATTEMPTS_EXCEEDED"

    /// True for the states that never change again without an explicit resume.
    public var isFinal: Bool {
        switch self {
        case .success, .error, .cancelled, .maxRecoveryAttemptsExceeded: return true
        case .pending, .enqueued, .delayed: return false
        }
    }
}

/// A snapshot of a workflow's row in `workflow_status`.
public struct WorkflowStatus: Sendable {
    /// The workflow ID.
    public var id: String
    /// The durable name of the workflow.
    public var name: String?
    /// The status; nil only for a status string this library does not know.
    public var state: WorkflowState?
    /// The raw status string as stored.
    public var rawState: String
    /// The executor that last ran it.
    public var executorID: String?
    /// The application version it runs under.
    public var applicationVersion: String?
    /// How many times it has been started or recovered.
    public var recoveryAttempts: Int
    /// Creation time in milliseconds since 1970, as stored.
    public var createdAtMilliseconds: Int64
    /// Last update time in milliseconds since 1970, as stored.
    public var updatedAtMilliseconds: Int64
    /// The queue it was started from, if any.
    public var queueName: String?

    /// When it was created.
    public var createdAt: Date { Date(timeIntervalSince1970: Double(createdAtMilliseconds) / 1000) }
    /// When its row last changed.
    public var updatedAt: Date { Date(timeIntervalSince1970: Double(updatedAtMilliseconds) / 1000) }

    init(_ row: WorkflowStatusRow) {
        id = row.id
        name = row.name
        state = WorkflowState(rawValue: row.status)
        rawState = row.status
        executorID = row.executorID
        applicationVersion = row.applicationVersion
        recoveryAttempts = row.recoveryAttempts
        createdAtMilliseconds = row.createdAtMilliseconds
        updatedAtMilliseconds = row.updatedAtMilliseconds
        queueName = row.queueName
    }
}
