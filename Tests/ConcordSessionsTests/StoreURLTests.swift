import ConcordSessions
import Testing

@Suite struct StoreURLTests {
    @Test func theSchemeNamesTheStore() {
        #expect(StoreURL("sqlite:/tmp/s.sqlite") == .sqlite(path: "/tmp/s.sqlite"))
        #expect(StoreURL("sqlite:") == .sqlite(path: ""))
        for url in ["redis://127.0.0.1:6379", "rediss://h:1", "redis-sentinel://h:26379#main", "rediss-sentinel://h:1#m"] {
            #expect(StoreURL(url) == .redis, "\(url)")
        }
        #expect(StoreURL("postgres://u@h:5432/db") == .postgres)
        #expect(StoreURL("postgresql://u@h/db") == .postgres)
        for url in ["mysql://db/x", "/tmp/s.sqlite", "REDIS://h:1", "", "redis:/h"] {
            #expect(StoreURL(url) == nil, "\(url)")
        }
    }

    /// Messages show store URLs without their secrets: every URL's user information, and query parameters named
    /// for a password, a secret or a token (`concord app` printed `redis://:TOPSECRET@…` in its usage error).
    @Test func aRedactedURLHasNoSecret() {
        #expect(StoreURL.redacted("redis://:TOPSECRET@127.0.0.1:6379/abc") == "redis://***@127.0.0.1:6379/abc")
        #expect(StoreURL.redacted("postgres://u:PG@SECRET@db:5432/app?sslmode=require") == "postgres://u:***@db:5432/app?sslmode=require")
        // The user name stays (it names the role that failed); it used to be hidden too, as `***@`.
        #expect(StoreURL.redacted("postgresql://app@db/app") == "postgresql://app@db/app")
        #expect(StoreURL.redacted("postgres://:PW@db/app") == "postgres://:***@db/app")
        #expect(StoreURL.redacted("redis-sentinel://:A@h1:1,h2:2/0?sentinelPassword=B&sentinelUsername=s#main")
                == "redis-sentinel://***@h1:1,h2:2/0?sentinelPassword=***&sentinelUsername=s#main")
        #expect(StoreURL.redacted("redis://:A@h1:7000,redis://u:B@h2:7000") == "redis://***@h1:7000,redis://***@h2:7000")
        #expect(StoreURL.redacted("redis://h1:7000?token=x&secretKey=y") == "redis://h1:7000?token=***&secretKey=***")
        #expect(StoreURL.redacted("rediss://app:p?w/#x@h:6380/2?caFile=/ca.pem") == "rediss://***@h:6380/2?caFile=/ca.pem")
        #expect(StoreURL.redacted("sqlite:/var/lib/s.sqlite") == "sqlite:/var/lib/s.sqlite")
        #expect(StoreURL.redacted("redis://h:1/0") == "redis://h:1/0")
    }

    @Test func severalRedisURLsAreClusterSeeds() {
        #expect(StoreURL.redisURLs("redis://h1:7000") == ["redis://h1:7000"])
        #expect(StoreURL.redisURLs("redis://h1:7000,redis://h2:7000,rediss://h3:7000")
                == ["redis://h1:7000", "redis://h2:7000", "rediss://h3:7000"])
        #expect(StoreURL.redisURLs("redis-sentinel://h1,h2,h3#main") == ["redis-sentinel://h1,h2,h3#main"])
    }
}
