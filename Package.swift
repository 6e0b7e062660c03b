// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "Durable",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Durable", targets: ["Durable"]),
        // For users' own tests: a runtime on a throwaway database, crash tests without a child process, timeouts.
        .library(name: "DurableTesting", targets: ["DurableTesting"]),
        // The Postgres layer, for naming the connection type of transactional steps.
        .library(name: "LibPQ", targets: ["LibPQ"]),
        .executable(name: "durable-demo", targets: ["DurableDemo"]),
        .executable(name: "durable-bench", targets: ["DurableBench"]),
        .executable(name: "durable-torture", targets: ["DurableTorture"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        // Only for `swift package generate-documentation` (scripts/docs); no target depends on it.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        // libpq, found through pkg-config; nothing above LibPQ imports it.
        .systemLibrary(
            name: "CLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"]), .brew(["libpq"])]
        ),
        // Swift over libpq: connections on their own threads, a pool, errors with SQLSTATE. Knows nothing of workflows.
        .target(
            name: "LibPQ",
            dependencies: [
                "CLibPQ",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The engine: registry, context, steps, recovery, schema migrations.
        .target(
            name: "Durable",
            dependencies: [
                "LibPQ",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The throwaway-Postgres launcher shared by the tests, the demo and the benchmarks.
        .target(name: "EmbeddedPostgres"),
        // The test kit for users' own tests. The core library never depends on it.
        .target(
            name: "DurableTesting",
            dependencies: [
                "Durable",
                "LibPQ",
                "EmbeddedPostgres",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "DurableDemo",
            dependencies: ["Durable", "EmbeddedPostgres", .product(name: "Logging", package: "swift-log")]
        ),
        // A worker process the crash tests start and SIGKILL.
        .executableTarget(
            name: "DurableTestWorker",
            dependencies: ["Durable", "LibPQ", .product(name: "Logging", package: "swift-log")],
            path: "Tests/Workers/DurableTestWorker"
        ),
        // Queue worker processes the queue crash tests start several of and SIGKILL one.
        .executableTarget(
            name: "DurableQueueWorker",
            dependencies: ["Durable", "LibPQ", .product(name: "Logging", package: "swift-log")],
            path: "Tests/Workers/DurableQueueWorker"
        ),
        .executableTarget(
            name: "DurableBench",
            dependencies: ["Durable", "LibPQ", "EmbeddedPostgres", .product(name: "Logging", package: "swift-log")],
            path: "Benchmarks/DurableBench"
        ),
        // The crash-and-fault torture run: workers, random SIGKILLs, Postgres restarts, terminated connections.
        .executableTarget(
            name: "DurableTorture",
            dependencies: ["Durable", "LibPQ", "EmbeddedPostgres", .product(name: "Logging", package: "swift-log")],
            path: "Benchmarks/DurableTorture"
        ),
        // What both test targets use: fresh databases, time bounds, gates, names, paths into the source tree. A
        // plain target, not a test target, so the test targets can depend on it; it does not import Testing
        // (not every toolchain lets a non-test target do that), so helpers that record issues stay in each.
        .target(
            name: "TestSupport",
            dependencies: ["LibPQ", "EmbeddedPostgres"],
            path: "Tests/TestSupport"
        ),
        .testTarget(
            name: "LibPQTests",
            dependencies: ["LibPQ", "EmbeddedPostgres", "TestSupport"]
        ),
        .testTarget(
            name: "DurableTests",
            dependencies: [
                "Durable", "LibPQ", "EmbeddedPostgres", "TestSupport", .product(name: "Logging", package: "swift-log"),
            ],
            // Read from the source tree by path: the schema fixtures compare against the files, not a bundle.
            exclude: ["Fixtures"]
        ),
        .testTarget(
            name: "DurableTestingTests",
            dependencies: [
                "DurableTesting", "Durable", "LibPQ", "EmbeddedPostgres",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
