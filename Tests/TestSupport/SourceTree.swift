import Foundation

/// Files the tests read from the package's source tree rather than from a bundle: the schema fixtures and the
/// migrations are compared with the files themselves, and the DBOS virtualenv lives beside the package.
public enum SourceTree {
    /// The package root: the nearest directory above this file holding `Package.swift`. Looked up rather than
    /// counted in `..` steps, so moving this file or the tests does not silently point elsewhere.
    public static let root: URL = {
        var directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while directory.path != "/" {
            if FileManager.default.fileExists(atPath: directory.appendingPathComponent("Package.swift").path) {
                return directory
            }
            directory.deleteLastPathComponent()
        }
        preconditionFailure("no Package.swift above \(#filePath)")
    }()

    /// `Tests/DurableTests/Fixtures` (excluded from the target in Package.swift, read by path).
    public static let durableFixtures = root.appendingPathComponent("Tests/DurableTests/Fixtures")

    /// `Migrations/`.
    public static let migrations = root.appendingPathComponent("Migrations")
}

/// Executables the package builds beside the test bundle (the worker processes the crash tests start, the
/// torture run): `swift build --build-tests` puts them all in one directory.
public enum BuiltExecutable {
    /// The path of `name` in the directory of the running test binary.
    public static func path(_ name: String) -> String {
        // /proc/self/exe where there is one (Linux): the binary itself, whatever argv[0] says.
        let me =
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: me).deletingLastPathComponent().appendingPathComponent(name).path
    }
}
