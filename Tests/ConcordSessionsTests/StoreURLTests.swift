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
}
