import Foundation

/// The PostgreSQL command-line tools of one installation.
struct PostgresBinaries: Sendable {
    /// The directory holding the tools (symlinks resolved), shown in logs.
    let directory: String
    let initdb: String
    let pgCtl: String
    /// `psql` from the same installation when present, else from PATH; `nil` when neither exists.
    let psql: String?

    /// Finds a server installation: `pg_ctl`/`initdb` on PATH first (Homebrew, Postgres.app and hand-made
    /// symlinks put them there), else the highest version in the usual package locations.
    static func locate() throws -> PostgresBinaries {
        if let pgCtlOnPath = ExecutableSearch.onPath("pg_ctl") {
            // Resolve symlinks so `initdb` and `psql` come from the same version as `pg_ctl` even when only
            // `pg_ctl` was linked into a PATH directory.
            let directory = URL(fileURLWithPath: pgCtlOnPath).resolvingSymlinksInPath()
                .deletingLastPathComponent().path
            if let initdb = ExecutableSearch.in(directory, "initdb") ?? ExecutableSearch.onPath("initdb") {
                return PostgresBinaries(
                    directory: directory,
                    initdb: initdb,
                    pgCtl: ExecutableSearch.in(directory, "pg_ctl") ?? pgCtlOnPath,
                    psql: ExecutableSearch.in(directory, "psql") ?? ExecutableSearch.onPath("psql"))
            }
        }
        for directory in installationDirectories() {
            if let pgCtl = ExecutableSearch.in(directory, "pg_ctl"),
                let initdb = ExecutableSearch.in(directory, "initdb")
            {
                return PostgresBinaries(
                    directory: directory,
                    initdb: initdb,
                    pgCtl: pgCtl,
                    psql: ExecutableSearch.in(directory, "psql") ?? ExecutableSearch.onPath("psql"))
            }
        }
        throw EmbeddedPostgresError.serverNotInstalled(searched: searchedPatterns)
    }

    /// `psql` for talking to an external server (`DATABASE_URL`), where no server installation is needed.
    static func locatePsql() -> String? {
        if let onPath = ExecutableSearch.onPath("psql") { return onPath }
        return installationDirectories().lazy.compactMap { ExecutableSearch.in($0, "psql") }.first
    }

    /// The places searched after PATH, named in the "not installed" error.
    static let searchedPatterns = [
        "/usr/lib/postgresql/*/bin",
        "/opt/homebrew/opt/postgresql@*/bin",
        "/usr/local/opt/postgresql@*/bin",
        "/Applications/Postgres.app/Contents/Versions/latest/bin",
    ]

    /// Candidate bin directories, Debian/Ubuntu first, each family ordered highest version first.
    /// Debian keeps the server off PATH (only its `pg_wrapper` is there); Homebrew's versioned formulae are
    /// keg-only, so they are not on PATH either.
    static func installationDirectories() -> [String] {
        var result: [String] = []
        result += versioned(parent: "/usr/lib/postgresql", prefix: "", suffix: "/bin")
        result += versioned(parent: "/opt/homebrew/opt", prefix: "postgresql@", suffix: "/bin")
        result += versioned(parent: "/usr/local/opt", prefix: "postgresql@", suffix: "/bin")
        result.append("/Applications/Postgres.app/Contents/Versions/latest/bin")
        return result
    }

    /// The `parent/prefix<version>suffix` directories, highest version first ("16" before "9.6").
    private static func versioned(parent: String, prefix: String, suffix: String) -> [String] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: parent)) ?? []
        let versions: [(name: String, version: [Int])] = entries.compactMap { name in
            guard name.hasPrefix(prefix) else { return nil }
            let parts = name.dropFirst(prefix.count).split(separator: ".").map { Int($0) }
            guard !parts.isEmpty, !parts.contains(nil) else { return nil }
            return (name, parts.compactMap { $0 })
        }
        return
            versions
            .sorted { $0.version.lexicographicallyPrecedes($1.version) }
            .reversed()
            .map { parent + "/" + $0.name + suffix }
    }
}

/// Looking up executables the way a shell would, without running a shell.
enum ExecutableSearch {
    /// The first executable file called `name` in the directories of PATH.
    static func onPath(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for directory in path.split(separator: ":") where !directory.isEmpty {
            if let found = self.in(String(directory), name) { return found }
        }
        return nil
    }

    /// `directory/name` when it exists and is executable.
    static func `in`(_ directory: String, _ name: String) -> String? {
        let candidate = directory + "/" + name
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: candidate, isDirectory: &isDirectory),
            !isDirectory.boolValue,
            FileManager.default.isExecutableFile(atPath: candidate)
        else { return nil }
        return candidate
    }
}
