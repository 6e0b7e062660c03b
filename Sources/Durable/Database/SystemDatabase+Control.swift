extension SystemDatabase {
    /// Marks a workflow `CANCELLED` unless it already finished. Returns its status before the call, or nil when
    /// no such workflow exists.
    func cancel(id: String) async throws -> String? {
        let result = try await query("cancel workflow", workflowID: id, control.cancel, [id])
        return result.first?.string(1)
    }

    /// Cancels a workflow whose deadline passed, only while the run with owner token `token` still owns it.
    /// Returns whether it was cancelled by this call.
    func timeOut(id: String, token: String) async throws -> Bool {
        let result = try await query("cancel timed-out workflow", workflowID: id, control.timeOut, [id, token])
        return (result.first?.int(0) ?? 0) > 0
    }

    /// Takes a workflow over for a fresh run from its last checkpoint. Returns nil when it has finished
    /// (`SUCCESS` or `ERROR`) or does not exist.
    func resume(id: String, token: String, executorID: String, applicationVersion: String, payloadLimit: Int) async throws -> ClaimedWorkflow? {
        let result = try await query("resume workflow", workflowID: id, control.resume, [id, token, executorID, applicationVersion, payloadLimit])
        guard let row = result.first else { return nil }
        return ClaimedWorkflow(id: id, name: row.string(0), recoveryAttempts: 1, input: row.string(1), inputBytes: row.int(2) ?? 0, deadlineMilliseconds: nil)
    }

    /// The status, name and creator token of a workflow, or nil when it does not exist.
    func existingWorkflow(id: String) async throws -> (status: String, name: String?, creator: String?)? {
        guard let row = try await query("read existing workflow", workflowID: id, sql.existingWorkflow, [id]).first else { return nil }
        return (row.string(0) ?? "", row.string(1), row.string(2))
    }
}
