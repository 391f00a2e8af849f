@testable import ConcordRedis
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

    @Test(arguments: ["redis://:topsecret@host:nope", "rediss://:topsecret@host:nope", "rediss://:topsecret@host?x=1"])
    func errorsDoNotLeakThePassword(url: String) {
        do {
            _ = try RedisEndpoint(url: url)
            Issue.record("expected an error")
        } catch {
            #expect(error.isInvalidConfiguration)
            #expect(!error.description.contains("topsecret"))
        }
    }

    @Test func parsesRedissWithTLSSettings() throws {
        #expect(try RedisEndpoint(url: "rediss://cache.example.com:6380").tls == RedisTLS())
        let endpoint = try RedisEndpoint(
            url: "rediss://app:p?w@10.0.0.5:6380/2?caFile=/etc/ca%20file.pem&certificateChain=/c.pem&privateKey=/k.pem&serverName=redis.internal&verify=false")
        #expect(
            endpoint
                == RedisEndpoint(
                    host: "10.0.0.5", port: 6380, username: "app", password: "p?w", database: 2,
                    tls: RedisTLS(caFile: "/etc/ca file.pem", certificateChain: "/c.pem", privateKey: "/k.pem", serverName: "redis.internal", verify: false)))
        #expect(try RedisEndpoint(url: "redis://:p?w@host").password == "p?w")
        #expect(try RedisEndpoint(url: "redis://host").tls == nil)
    }

    /// `redis://h1:7000,h2:7000` (meant as two seeds) was one host `h1:7000,h2` and 503 "name not resolved".
    @Test(arguments: ["redis://127.0.0.1:7000,127.0.0.1:7001", "redis://a,b:1", "redis://a:b:1"])
    func aHostListIsRefused(url: String) {
        #expect(throws: RedisClientError.self) { try RedisEndpoint(url: url) }
    }

    @Test func repliesThatMeanAMisconfiguredServerSaySo() {
        #expect(RedisSessionStore.hint(forReply: "MOVED 15007 127.0.0.1:43013", isCluster: false)?.contains("Redis Cluster node") == true)
        #expect(RedisSessionStore.hint(forReply: "CROSSSLOT Keys in request don't hash to the same slot", isCluster: false) != nil)
        #expect(RedisSessionStore.hint(forReply: "MOVED 15007 127.0.0.1:43013", isCluster: true) == nil)
        #expect(RedisSessionStore.hint(forReply: "READONLY You can't write against a read only replica.", isCluster: false)?.contains("read-only replica") == true)
        #expect(RedisSessionStore.hint(forReply: "ERR unknown command", isCluster: false) == nil)
    }

    @Test func severalURLsMeanCluster() throws {
        #expect(try RedisClientConfiguration(urls: ["redis://a:1", "redis://b:2"]).isCluster)
        #expect(try !RedisClientConfiguration(urls: ["redis://a:1"]).isCluster)
    }
}
