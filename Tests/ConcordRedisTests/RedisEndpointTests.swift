import ConcordRedis
import Testing

@Suite(.timeLimit(.minutes(3))) struct RedisEndpointTests {
    @Test func parsesFullURL() throws {
        let endpoint = try RedisEndpoint(url: "redis://:s%40cret@10.0.0.5:6380/3")
        #expect(endpoint == RedisEndpoint(host: "10.0.0.5", port: 6380, password: "s@cret", database: 3))
        #expect(endpoint.description == "10.0.0.5:6380/3")
    }

    @Test func parsesDefaultsUsernameAndIPv6() throws {
        #expect(try RedisEndpoint(url: "redis://localhost") == RedisEndpoint(host: "localhost"))
        #expect(
            try RedisEndpoint(url: "redis://app:pw@[::1]:7000/")
                == RedisEndpoint(host: "::1", port: 7000, username: "app", password: "pw"))
    }

    @Test(arguments: ["http://localhost", "redis://", "redis://host:port", "redis://host:70000", "redis://host/x",
        "redis://[::1"])
    func rejectsInvalidURLs(url: String) {
        #expect(throws: RedisClientError.self) { try RedisEndpoint(url: url) }
    }

    @Test func errorsDoNotLeakThePassword() {
        do {
            _ = try RedisEndpoint(url: "redis://:topsecret@host:nope")
            Issue.record("expected an error")
        } catch {
            #expect(error.isInvalidConfiguration)
            #expect(!error.description.contains("topsecret"))
        }
    }

    @Test func severalURLsMeanCluster() throws {
        #expect(try RedisClientConfiguration(urls: ["redis://a:1", "redis://b:2"]).isCluster)
        #expect(try !RedisClientConfiguration(urls: ["redis://a:1"]).isCluster)
    }
}
