import Foundation

/// Where the database comes from: an external server named by `DATABASE_URL`, or, when that is unset, a
/// throwaway cluster this module starts itself (see ``EmbeddedPostgres``).
public struct DatabaseEnvironment: Sendable, Equatable {
    /// The environment variable that, when set, names the server to use instead of starting one.
    public static let variableName = "DATABASE_URL"

    /// The URL taken from `DATABASE_URL`, or `nil` when the embedded server should be used.
    public let externalURL: String?

    /// An environment with the given external URL; `nil` or a blank string means "use the embedded server".
    public init(externalURL: String?) {
        // A blank value is what `DATABASE_URL= swift test` produces; treating it as a URL would only fail
        // later with a confusing connection error, so it counts as unset. A real value is kept byte for byte:
        // callers were promised it back untouched.
        let isBlank = externalURL?.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty ?? true
        self.externalURL = isBlank ? nil : externalURL
    }

    /// The environment of this process, read from `DATABASE_URL` now (not cached, so tests can set it).
    public static var current: DatabaseEnvironment {
        DatabaseEnvironment(externalURL: ProcessInfo.processInfo.environment[variableName])
    }

    /// Whether a throwaway cluster must be started because no external server was named.
    public var usesEmbeddedServer: Bool { externalURL == nil }
}
