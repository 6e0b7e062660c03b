import Foundation

/// Running SQL through the installed `psql`, for setup only (such as `CREATE DATABASE`); application code
/// talks to the server through libpq.
struct Psql: Sendable {
    let executable: String
    let user: ClusterUser
    /// A directory the user may enter, used as the working directory.
    let directory: String

    /// Runs `sql` against `url` and returns what it prints, unaligned and without headers (so `select 1`
    /// yields "1"). The SQL goes in on stdin, where psql runs each statement separately (CREATE DATABASE
    /// cannot share a transaction), and ON_ERROR_STOP makes the first error fail the whole call.
    func run(_ sql: String, url: String) async throws -> String {
        let output = try await user.run(
            executable,
            [
                "--no-psqlrc", "--quiet", "--no-align", "--tuples-only",
                "--set", "ON_ERROR_STOP=1", "--dbname", url, "--file", "-",
            ], input: sql, directory: directory)
        // The URL may carry a password (DATABASE_URL); the error must not print it.
        try output.check("psql", replacing: [(url, DatabaseURL.redactingPassword(url))])
        return output.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
