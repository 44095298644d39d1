// swift-tools-version:6.0
import PackageDescription

// Dependencies point one way: the CLI composes; the engine knows the legacy
// queue and the TaskManager client, never the embedded server.
let package = Package(
    name: "taskbridge",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "taskbridge", targets: ["taskbridge"]),
        .executable(name: "taskbridge-bench", targets: ["taskbridge-bench"]),
        .library(name: "TaskManagerModel", targets: ["TaskManagerModel"]),
        .library(name: "TaskManagerClient", targets: ["TaskManagerClient"]),
        .library(name: "TaskManagerServer", targets: ["TaskManagerServer"]),
        .library(name: "TaskBridgeTesting", targets: ["TaskBridgeTesting"]),
    ],
    dependencies: [
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-async-algorithms", from: "1.1.4"),
    ],
    targets: [
        // Pure wire model: ordered JSON, PHP-compatible encoding, dedupe key,
        // JSON Schema subset, envelopes. No I/O.
        .target(name: "TaskManagerModel", dependencies: [.product(name: "Crypto", package: "swift-crypto")]),
        .target(
            name: "TaskManagerClient",
            dependencies: [
                "TaskManagerModel",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Free text with every byte (NUL included) through GRDB's bindings.
        .target(name: "SQLiteText", dependencies: [.product(name: "GRDB", package: "GRDB.swift")]),
        .target(
            name: "TaskManagerServer",
            dependencies: [
                "TaskManagerModel", "SQLiteText",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The cutover stages: the one type every spelling of the modes derives from.
        .target(name: "CutoverStages"),
        .target(
            name: "LegacyQueue",
            dependencies: [
                "TaskManagerModel", "SQLiteText", "CutoverStages",
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        .target(
            name: "BridgeConfig",
            dependencies: [
                "TaskManagerModel", "CutoverStages",
                .product(name: "TOMLKit", package: "TOMLKit"),
            ]
        ),
        .target(
            name: "BridgeEngine",
            dependencies: [
                "TaskManagerModel", "TaskManagerClient", "LegacyQueue", "BridgeConfig",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "AsyncAlgorithms", package: "swift-async-algorithms"),
            ]
        ),
        // The composition root: configuration to store, client, embedded
        // server and engine; a queue is one instance of it, a fleet a list.
        .target(
            name: "BridgeRuntime",
            dependencies: [
                "BridgeConfig", "BridgeEngine", "LegacyQueue", "TaskManagerClient", "TaskManagerServer",
                "TaskManagerModel", .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The migration dashboard served by `run` on the metrics listener: the
        // page's files are compiled into the binary (no build step, no CDN).
        .target(
            name: "BridgeDashboard",
            dependencies: [
                "BridgeEngine", "BridgeRuntime", "BridgeConfig", "LegacyQueue", "TaskManagerModel",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            resources: [
                .embedInCode("Resources/index.html"), .embedInCode("Resources/dashboard.js"),
                .embedInCode("Resources/dashboard.css"),
            ]
        ),
        // PrismQ producers and workers, API workers, child processes: what the
        // demo, the benchmarks and the tests simulate legacy life with.
        .target(
            name: "QueueSimulators",
            dependencies: [
                "TaskManagerModel", "TaskManagerClient", "LegacyQueue",
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        // The harness of tests and benchmarks (never linked by `taskbridge`):
        // the embedded server on an ephemeral port, a bridge on temporary
        // files, a fault-injecting proxy.
        .target(
            name: "TaskBridgeTesting",
            dependencies: [
                "QueueSimulators",
                "TaskManagerModel", "TaskManagerClient", "TaskManagerServer", "LegacyQueue", "BridgeConfig",
                "BridgeEngine", "BridgeRuntime",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ]
        ),
        // A test-only trait: bounds how many tests that start servers, child
        // processes or a browser run at once. Linked by test targets only.
        .target(name: "TestSlots"),
        .executableTarget(
            name: "taskbridge",
            dependencies: [
                "TaskManagerModel", "TaskManagerClient", "TaskManagerServer", "LegacyQueue",
                "BridgeConfig", "BridgeEngine", "BridgeDashboard", "BridgeRuntime", "QueueSimulators",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Hummingbird", package: "hummingbird"),
            ]
        ),
        // Load tools in their own binary: separate processes, as users run them.
        .executableTarget(
            name: "taskbridge-bench",
            dependencies: [
                "TaskManagerModel", "TaskManagerClient", "TaskManagerServer", "LegacyQueue", "BridgeConfig",
                "BridgeEngine",
                "TaskBridgeTesting", "QueueSimulators",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "TaskManagerModelTests", dependencies: ["TaskManagerModel"]),
        .testTarget(
            name: "TaskManagerConformanceTests",
            dependencies: [
                "TestSlots",
                "TaskManagerModel", "TaskManagerClient", "TaskManagerServer", "TaskBridgeTesting",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "TaskManagerClientTests",
            dependencies: [
                "TaskManagerModel", "TaskManagerClient", "TaskBridgeTesting",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .testTarget(
            name: "LegacyQueueTests",
            dependencies: [
                "LegacyQueue", "TaskBridgeTesting", "TaskManagerModel", .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        // The real executable as a child process, one file per command.
        .testTarget(
            name: "TaskbridgeCLITests",
            dependencies: [
                "TestSlots",
                "BridgeEngine", "BridgeConfig", "LegacyQueue", "TaskBridgeTesting", "TaskManagerClient",
                "TaskManagerModel",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ]
        ),
        .testTarget(
            name: "BridgeEngineTests",
            dependencies: [
                "TestSlots", "BridgeEngine", "BridgeConfig", "LegacyQueue", "TaskBridgeTesting", "TaskManagerClient",
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
