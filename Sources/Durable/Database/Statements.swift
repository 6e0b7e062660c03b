/// SQL pieces shared by the statements of several domains.
enum Statements {
    /// The database clock in epoch milliseconds, as DBOS stores times.
    static let nowMilliseconds: StaticString = "(EXTRACT(epoch FROM now()) * 1000.0)::bigint"
}
