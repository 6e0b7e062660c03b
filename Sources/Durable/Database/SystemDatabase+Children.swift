extension SystemDatabase {
    /// What starting a child found.
    struct ChildStartOutcome: Sendable {
        var workflowStatus: String?
        var stillOwner: Bool
        /// True when this call created the child's row, so this process must run it.
        var created: Bool
        /// The name on the child's row (ours, or an older row's under the same ID).
        var childName: String?
    }

    func startChild(
        id: String, name: String, input: String, token: String, executorID: String, applicationVersion: String,
        deadline: Int64?, parentID: String, parentStep: Int, parentToken: String
    ) async throws -> ChildStartOutcome {
        let result = try await query("start child workflow", workflowID: parentID, children.startChild, [
            id, name, executorID, applicationVersion, token, input, deadline, parentID, parentStep,
            WorkflowContext.nowMilliseconds(), parentToken,
        ])
        let row = result.first
        return ChildStartOutcome(
            workflowStatus: row?.string(0), stillOwner: row?.bool(1) ?? false,
            created: (row?.int(2) ?? 0) > 0, childName: row?.string(3)
        )
    }
}
