import LibPQ

extension DurableError {
    /// Translates a libpq-layer error into the public error type, keeping its SQLSTATE. Its message is already
    /// free of passwords.
    init(_ error: PGError, context: String, workflowID: String? = nil) {
        let code: Code
        switch error.kind {
        case .connectionFailed, .connectionLost: code = .connectionFailed
        case .poolTimeout: code = .poolExhausted
        case .closed: code = .notRunning
        case .decodingFailed: code = .databaseError
        case .statementFailed: code = error.isConnectionProblem ? .connectionFailed : .databaseError
        }
        if error.sqlState == "54000" {
            // "index row size exceeds maximum": the server's message names an internal index and suggests an MD5
            // index, which only confuses; what the caller can change is the length of what it passed.
            self.init(
                code,
                "\(context): a value exceeds PostgreSQL's limit for indexed columns (an ID, name, key or topic longer than the library lets through: see ArgumentChecks); use a shorter one",
                workflowID: workflowID, sqlState: error.sqlState)
            return
        }
        self.init(code, "\(context): \(error)", workflowID: workflowID, sqlState: error.sqlState)
    }

    /// Wraps any error met while talking to the database.
    static func wrapping(_ error: any Error, context: String, workflowID: String? = nil) -> any Error {
        if let error = error as? PGError { return DurableError(error, context: context, workflowID: workflowID) }
        return error
    }
}
