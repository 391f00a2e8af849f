// swift-tools-version:6.2
// Concord: session consistency for a web tier behind a reverse proxy.
// The module map (and which imports are allowed) is in ../shared/DESIGN.md and docs/architecture.md.
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny")
]
// The hot paths' release builds (the proxy, the Redis client) leave out run-time exclusivity checks on their own
// code: swift_beginAccess and friends were ≈ 3 % of the proxy's profile under load and ≈ 2 % of the Redis loop
// thread's (NIO's share included); without them the proxy's CPU per request and Redis loads at concurrency 1 gained
// 1.5–3 % (docs/stores-redis.md). Debug builds, which the tests use, keep the checks.
let uncheckedExclusivitySwiftSettings: [SwiftSetting] =
    swiftSettings + [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]

let package = Package(
    name: "concord",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "concord", targets: ["concord"]),
        .library(name: "ConcordHashing", targets: ["ConcordHashing"]),
        .library(name: "ConcordSessions", targets: ["ConcordSessions"]),
        .library(name: "ConcordLab", targets: ["ConcordLab"]),
        .library(name: "ConcordNetworking", targets: ["ConcordNetworking"]),
        .library(name: "ConcordApp", targets: ["ConcordApp"]),
        .library(name: "ConcordSessionsTesting", targets: ["ConcordSessionsTesting"]),
        .library(name: "ConcordHummingbird", targets: ["ConcordHummingbird"]),
        .library(name: "ConcordRedis", targets: ["ConcordRedis"]),
        .library(name: "ConcordReplication", targets: ["ConcordReplication"]),
        .library(name: "ConcordSQLite", targets: ["ConcordSQLite"]),
        .library(name: "ConcordPostgres", targets: ["ConcordPostgres"]),
    ],
    dependencies: [
        // Declared once here; SwiftPM builds only what a target uses.
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.9.0"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.0.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.5.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.81.0"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.24.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.27.0"),
        .package(url: "https://github.com/apple/swift-nio-http2.git", from: "1.30.0"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.1.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.0.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.5.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.21.0"),
        .package(url: "https://github.com/vapor/sqlite-nio.git", from: "1.10.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "5.0.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.1.0"),
    ],
    targets: [
        // MARK: Libraries (one per box of the module map)
        .target(
            name: "ConcordHashing",
            swiftSettings: swiftSettings
        ),
        // Linux calls Swift's Glibc module leaves out (CPU affinity for the proxy's event loops).
        .target(name: "CConcordSystem"),
        // SwiftNIO pieces every server of Concord shares (proxy, app, replication): a listener that pauses when
        // the process is out of descriptors, and the open-file limit.
        .target(
            name: "ConcordNetworking",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "ConcordProxy",
            dependencies: [
                "ConcordHashing",
                "ConcordNetworking",
                "CConcordSystem",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                // HTTP/2 to clients (ALPN h2 on the TLS listener).
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                // The client certificate's subject and names for X-Forwarded-Client-Cert (mutual TLS).
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: uncheckedExclusivitySwiftSettings
        ),
        .target(
            name: "ConcordSessions",
            dependencies: [
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "ConcordRedis",
            dependencies: [
                "ConcordSessions",
                "ConcordNetworking",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: uncheckedExclusivitySwiftSettings
        ),
        .target(
            name: "ConcordReplication",
            dependencies: [
                .product(name: "Crypto", package: "swift-crypto"),  // the hello's proof of the shared secret
                "ConcordSessions",
                "ConcordHashing",
                "ConcordNetworking",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),

        .target(
            name: "ConcordLab",
            dependencies: [
                "ConcordHashing",
                "ConcordSessions",
                "ConcordProxy",  // SettingsDecoding for scenario files (the lab runs the proxy as a process)
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "ConcordApp",
            dependencies: [
                "ConcordSessions",
                "ConcordHummingbird",
                "ConcordReplication",
                "ConcordRedis",
                "ConcordSQLite",
                "ConcordPostgres",
                "ConcordNetworking",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // The store conformance suite every SessionStore's tests run (imports Testing; test targets only).
        .target(
            name: "ConcordSessionsTesting",
            dependencies: [
                "ConcordSessions",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "ConcordHummingbird",
            dependencies: [
                "ConcordSessions",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "ConcordSQLite",
            dependencies: [
                "ConcordSessions",
                .product(name: "SQLiteNIO", package: "sqlite-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "ConcordPostgres",
            dependencies: [
                "ConcordSessions",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: The command-line tool
        .executableTarget(
            name: "concord",
            dependencies: [
                "ConcordHashing",
                "ConcordProxy",
                "ConcordLab",
                "ConcordApp",
                "ConcordNetworking",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Metrics", package: "swift-metrics"),
                "ConcordRedis",
                "ConcordReplication",
                "ConcordSessions",
                "ConcordHummingbird",
                "ConcordSQLite",
                "ConcordPostgres",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: Tests
        .testTarget(
            name: "ConcordSessionsTests",
            dependencies: ["ConcordSessions", "ConcordSessionsTesting"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ConcordHummingbirdTests",
            dependencies: [
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                "ConcordHummingbird",
                "ConcordSessions",
                "ConcordSessionsTesting",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // Test-only: the committed TLS test certificates, shared by the proxy's and the Redis client's tests.
        .target(
            name: "ConcordTLSTestSupport",
            dependencies: [.product(name: "NIOSSL", package: "swift-nio-ssl")],
            path: "Tests/ConcordTLSTestSupport",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ConcordHashingTests",
            dependencies: ["ConcordHashing"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ConcordProxyTests",
            dependencies: [
                "ConcordProxy",
                "ConcordNetworking",
                "ConcordTLSTestSupport",
                "ConcordLab",  // LabChild runs the `concord proxy` processes some tests start
                "ConcordSessionsTesting",  // ManualClock drives the health checker's rounds
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ConcordLabTests",
            dependencies: [
                "ConcordLab",
                "ConcordSessionsTesting",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ConcordAppTests",
            dependencies: [
                "ConcordApp",
                "ConcordLab",
                "ConcordSessionsTesting",
                "ConcordSessions",
                "ConcordTLSTestSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ConcordRedisTests",
            dependencies: [
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                "ConcordRedis",
                "ConcordSessions",
                "ConcordSessionsTesting",
                "ConcordTLSTestSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOTestUtils", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ConcordReplicationTests",
            dependencies: [
                "ConcordReplication",
                "ConcordSessions",
                "ConcordSessionsTesting",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOTestUtils", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ConcordSQLiteTests",
            dependencies: [
                "ConcordLab",
                "ConcordSQLite",
                "ConcordSessionsTesting",
                .product(name: "SQLiteNIO", package: "sqlite-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ConcordPostgresTests",
            dependencies: [
                "ConcordPostgres",
                "ConcordSessionsTesting",
                "ConcordTLSTestSupport",
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
