/// Checks of the IDs, names and keys callers pass (workflow IDs and names, topics, event and stream keys, queue
/// names, partition, deduplication and idempotency keys), so a value PostgreSQL cannot take is refused as the
/// caller's mistake, naming the argument and the limit, before anything is written — rather than surfacing after a
/// round trip as a database error about an index row or "parameter $3".
enum ArgumentChecks {
    /// The most bytes (UTF-8) of any one ID, name or key. PostgreSQL's B-tree indexes take entries of at most about
    /// 2,700 bytes, and up to three of these values share one entry (a queue name, a partition key and a workflow
    /// ID in the partitioned-queue index), so each gets 800. It also keeps `<workflow ID>::<key>`, the payload of a
    /// notification, far below PostgreSQL's 8,000-byte limit.
    static let longestName = 800

    /// Refuses a NUL byte, which PostgreSQL text cannot hold, and a value longer than ``longestName`` bytes.
    static func text(_ value: String?, _ what: String, workflowID: String? = nil) throws {
        guard let value else { return }
        if let problem = problem(with: value) {
            throw DurableError(.invalidArgument, "\(what) \(problem)", workflowID: workflowID)
        }
    }

    /// What is wrong with a name or key, as the end of a sentence naming it, or nil when it is fine.
    static func problem(with value: String) -> String? {
        if value.utf8.contains(0) { return "contains a NUL byte, which PostgreSQL text cannot hold" }
        if value.utf8.count > longestName {
            return
                "is \(value.utf8.count) bytes long; the limit is \(longestName) bytes (UTF-8), as PostgreSQL indexes it"
        }
        return nil
    }

    /// A caller's name or key as shown in an error message: long ones are cut, so a message stays readable.
    static func shown(_ value: String) -> String {
        value.count <= 64 ? value : String(value.prefix(64)) + "… (\(value.utf8.count) bytes)"
    }
}
