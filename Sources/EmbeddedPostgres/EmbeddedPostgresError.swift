/// Why a throwaway database could not be provided, worded so the reader knows what to do next.
public struct EmbeddedPostgresError: Error, CustomStringConvertible, Sendable {
    /// The broad category of a failure, for callers that want to react to one case (say, skip tests when
    /// no server is installed) without parsing the message.
    public enum Kind: Sendable, Equatable {
        /// Neither `DATABASE_URL` nor the PostgreSQL server binaries (`pg_ctl`, `initdb`) are available.
        case serverNotInstalled
        /// The `psql` client, needed to create databases, is not installed.
        case clientNotInstalled
        /// Running as root, but there is no unprivileged user (or no `runuser`) to run PostgreSQL as.
        case noUnprivilegedUser
        /// A PostgreSQL command-line tool ran and failed.
        case commandFailed
        /// The cluster was already stopped when an operation was asked of it.
        case stopped
        /// A database URL could not be understood.
        case invalidURL
        /// An operating-system call (temporary directory, socket, file write) failed.
        case system
    }

    /// The category of this failure.
    public let kind: Kind
    /// A human-readable explanation, including the next step to take and any captured tool output.
    public let message: String

    /// Makes an error of the given kind; the message should say what to do, not only what went wrong.
    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    /// The message, so `print(error)` and test failures show the actionable text.
    public var description: String { message }
}

extension EmbeddedPostgresError {
    /// The text shown wherever a database is needed but none can be had. It lists both ways out because the
    /// reader may be unable (CI image) or unwilling (laptop) to install a server.
    static func serverNotInstalled(searched: [String]) -> EmbeddedPostgresError {
        EmbeddedPostgresError(
            .serverNotInstalled,
            """
            No PostgreSQL server found: `pg_ctl` and `initdb` are not on PATH nor in \
            \(searched.joined(separator: ", ")), and DATABASE_URL is not set.
            Do one of:
              • install PostgreSQL, then run again:
                    apt-get install -y postgresql      (Debian/Ubuntu)
                    brew install postgresql            (macOS)
              • or start the repository's container and point at it:
                    docker compose up -d
                    export DATABASE_URL=postgresql://postgres:postgres@127.0.0.1:5432/postgres
            """)
    }

    /// Raised when a database must be created but `psql` is missing (e.g. DATABASE_URL points at a
    /// container and only libpq is installed locally).
    static func clientNotInstalled() -> EmbeddedPostgresError {
        EmbeddedPostgresError(
            .clientNotInstalled,
            """
            The PostgreSQL client `psql` was not found on PATH or next to the server binaries; it is needed to \
            create test databases. Install it (`apt-get install -y postgresql-client`, or `brew install libpq` \
            and add its bin directory to PATH), or install the full server (`apt-get install -y postgresql`, \
            `brew install postgresql`).
            """)
    }
}
