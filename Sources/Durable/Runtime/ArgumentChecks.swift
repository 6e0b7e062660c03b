/// Checks of the names and keys callers pass (topics, event and stream keys, deduplication and idempotency keys),
/// so a value PostgreSQL cannot take is refused as the caller's mistake, naming the argument, before anything is
/// written — rather than surfacing later as a database error about "parameter $3".
enum ArgumentChecks {
    /// The most bytes of `<workflow ID>::<key or topic>`: that string is the payload of a PostgreSQL NOTIFY,
    /// which must stay under 8,000 bytes.
    static let longestNotifiedName = 7_900

    /// Refuses a NUL byte, which PostgreSQL text cannot hold.
    static func text(_ value: String?, _ what: String, workflowID: String? = nil) throws {
        guard let value, value.utf8.contains(0) else { return }
        throw DurableError(.invalidArgument, "\(what) contains a NUL byte, which PostgreSQL text cannot hold", workflowID: workflowID)
    }

    /// Refuses a NUL byte, and a key or topic that with its workflow's ID is too long to name a notification.
    static func notifiedName(_ value: String, _ what: String, of workflowID: String) throws {
        try text(value, what, workflowID: workflowID)
        let length = workflowID.utf8.count + 2 + value.utf8.count
        guard length <= longestNotifiedName else {
            throw DurableError(
                .invalidArgument,
                "\(what) is too long (\(value.utf8.count) bytes): with the workflow ID it must stay within \(longestNotifiedName) bytes, as it names a PostgreSQL notification; use a shorter one",
                workflowID: workflowID
            )
        }
    }

    /// A caller's name or key as shown in an error message: long ones are cut, so a message stays readable.
    static func shown(_ value: String) -> String {
        value.count <= 64 ? value : String(value.prefix(64)) + "… (\(value.utf8.count) bytes)"
    }
}
