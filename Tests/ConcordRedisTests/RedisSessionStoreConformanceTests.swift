import ConcordRedis
import ConcordSessions
import ConcordSessionsTesting
import Testing

/// The shared `SessionStore` contract against a real `redis-server`, and against a real 3-primary cluster.
@Suite(.timeLimit(.minutes(3))) struct RedisSessionStoreConformanceTests {
    static let options = SessionStoreConformance.Options(maximumPayloadSize: 1 << 20)

    @Test(arguments: SessionStoreConformance.Check.allCases)
    func conformance(_ check: SessionStoreConformance.Check) async throws {
        try await SessionStoreConformance.run(check, options: Self.options) { body in
            try await RedisServerFixture.withServer { server in
                let store = try RedisSessionStore(configuration: RedisSessionStoreConfiguration.testing(urls: [server.url]))
                defer { store.shutdown() }
                try await body(store)
            }
        }
    }

    /// Every check on one cluster (a fresh key prefix per check), the user index on other nodes than the sessions.
    @Test func conformanceOnACluster() async throws {
        try await RedisClusterFixture.withCluster { cluster in
            for check in SessionStoreConformance.Check.allCases {
                var configuration = try RedisSessionStoreConfiguration.testing(urls: cluster.urls, keyPrefix: "conformance-\(check):")
                configuration.maximumPayloadSize = 1 << 20
                let store = try RedisSessionStore(configuration: configuration)
                defer { store.shutdown() }
                try await SessionStoreConformance.run(check, options: Self.options) { store }
            }
        }
    }
}
