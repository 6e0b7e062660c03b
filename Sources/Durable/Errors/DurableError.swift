/// The one error type the Durable library throws.
///
/// Every error carries a ``Code`` to switch on and a message a person can act on. Messages never contain a
/// password (connection strings are redacted) and never contain workflow inputs or outputs.
public struct DurableError: Error, Sendable, CustomStringConvertible {
    /// A stable, machine-readable error category.
    ///
    /// Codes are made only by the library (a struct rather than an enum, so a release can add one without breaking
    /// a `switch` that has a `default`).
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The code's name, stable across releases.
        public let rawValue: String
        init(rawValue: String) { self.rawValue = rawValue }
        /// The code's name.
        public var description: String { rawValue }

        /// The configuration is unusable (for example an empty database URL or a bad schema name).
        public static let invalidConfiguration = Code(rawValue: "invalidConfiguration")
        /// An argument was rejected (for example an empty workflow ID).
        public static let invalidArgument = Code(rawValue: "invalidArgument")
        /// Workflow registration failed (for example two workflows with one name).
        public static let invalidRegistration = Code(rawValue: "invalidRegistration")
        /// The database could not be reached or the connection was lost and could not be restored in time.
        public static let connectionFailed = Code(rawValue: "connectionFailed")
        /// The database rejected a statement; ``DurableError/sqlState`` says why.
        public static let databaseError = Code(rawValue: "databaseError")
        /// No pooled connection became free in time.
        public static let poolExhausted = Code(rawValue: "poolExhausted")
        /// The system schema could not be created or is at an unsupported version.
        public static let migrationFailed = Code(rawValue: "migrationFailed")
        /// A workflow ID is already used by a workflow with a different name.
        public static let conflictingWorkflowID = Code(rawValue: "conflictingWorkflowID")
        /// No workflow with this durable name is registered in this process.
        public static let workflowNotRegistered = Code(rawValue: "workflowNotRegistered")
        /// No workflow with this ID exists.
        public static let workflowNotFound = Code(rawValue: "workflowNotFound")
        /// The workflow finished with an error; ``DurableError/errorName`` holds the original error's type name.
        public static let workflowFailed = Code(rawValue: "workflowFailed")
        /// The workflow was cancelled.
        public static let workflowCancelled = Code(rawValue: "workflowCancelled")
        /// The workflow was recovered too many times and was moved to `MAX_RECOVERY_ATTEMPTS_EXCEEDED`.
        public static let maxRecoveryAttemptsExceeded = Code(rawValue: "maxRecoveryAttemptsExceeded")
        /// Replaying the workflow met a recorded step different from the one the code asked for.
        public static let nonDeterministicWorkflow = Code(rawValue: "nonDeterministicWorkflow")
        /// A step threw; ``DurableError/errorName`` holds the original error's type name. Replays throw the same.
        public static let stepFailed = Code(rawValue: "stepFailed")
        /// A durable operation was called from a child task (`async let`, a task group) instead of the workflow's task.
        public static let stepOutsideWorkflowTask = Code(rawValue: "stepOutsideWorkflowTask")
        /// A recorded value could not be decoded into the type the code expects.
        public static let corruptedCheckpoint = Code(rawValue: "corruptedCheckpoint")
        /// A value could not be encoded as portable JSON.
        public static let encodingFailed = Code(rawValue: "encodingFailed")
        /// A value is larger than the configured payload limit.
        public static let payloadTooLarge = Code(rawValue: "payloadTooLarge")
        /// Another live workflow on the queue holds the deduplication ID.
        public static let queueDeduplicated = Code(rawValue: "queueDeduplicated")
        /// Another live process holds this process's executor ID; give each process its own
        /// ``DurableConfiguration/executorID``.
        public static let executorIDInUse = Code(rawValue: "executorIDInUse")
        /// The runtime is shutting down or not running, so it takes no new work.
        public static let notRunning = Code(rawValue: "notRunning")
        /// A wait ended at its deadline before what it waited for happened (DurableTesting's `result(timeout:)`
        /// and crash tests).
        public static let timedOut = Code(rawValue: "timedOut")
    }

    /// The category.
    public let code: Code
    /// What happened and, where possible, what to do about it.
    public let message: String
    /// The workflow concerned, when there is one.
    public var workflowID: String?
    /// The SQLSTATE of a database error, when there is one.
    public var sqlState: String?
    /// For ``Code/workflowFailed`` and ``Code/stepFailed``: the type name of the error the code threw.
    public var errorName: String?

    /// Creates an error.
    public init(
        _ code: Code, _ message: String, workflowID: String? = nil, sqlState: String? = nil, errorName: String? = nil
    ) {
        self.code = code
        self.message = message
        self.workflowID = workflowID
        self.sqlState = sqlState
        self.errorName = errorName
    }

    /// `DurableError.<code>: <message>`, then the workflow ID and the SQLSTATE in brackets when there are any
    /// (a very long workflow ID is shortened).
    public var description: String {
        var text = "DurableError.\(code): \(message)"
        // A workflow ID can be very long (IDs are the caller's); the description stays readable.
        if let workflowID {
            text += " [workflow \(workflowID.count <= 200 ? workflowID : String(workflowID.prefix(200)) + "…")]"
        }
        if let sqlState { text += " [SQLSTATE \(sqlState)]" }
        return text
    }
}
