/// How to open connections: the connection string plus the settings this library insists on.
public struct PGConfiguration: Sendable {
    /// The server to connect to. Its password never appears in logs or errors.
    public var connectionString: ConnectionString
    /// Seconds to wait for a connection to open before giving up. libpq's minimum is 2.
    public var connectTimeoutSeconds: Int
    /// The `application_name` the server shows in `pg_stat_activity`.
    public var applicationName: String
    /// Prepare each distinct statement once per connection and reuse the plan. Turn off behind poolers that do
    /// not support prepared statements.
    public var usePreparedStatements: Bool

    /// Creates a configuration.
    public init(
        connectionString: ConnectionString,
        connectTimeoutSeconds: Int = 10,
        applicationName: String = "durable",
        usePreparedStatements: Bool = true
    ) {
        self.connectionString = connectionString
        self.connectTimeoutSeconds = connectTimeoutSeconds
        self.applicationName = applicationName
        self.usePreparedStatements = usePreparedStatements
    }

    /// libpq keywords and values for `PQconnectdbParams`. Our defaults come first so that anything the user's
    /// connection string says (which libpq expands where `dbname` stands) wins over them.
    var libpqParameters: [(String, String)] {
        [
            ("connect_timeout", String(max(2, connectTimeoutSeconds))),
            ("application_name", applicationName),
            // TCP keepalives notice a vanished server in about half a minute instead of hanging for hours.
            ("keepalives", "1"),
            ("keepalives_idle", "10"),
            ("keepalives_interval", "5"),
            ("keepalives_count", "3"),
            ("dbname", connectionString.rawValue),
        ]
    }
}
