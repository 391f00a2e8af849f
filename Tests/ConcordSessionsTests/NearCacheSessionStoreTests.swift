import ConcordSessions
import ConcordSessionsTesting
import Synchronization
import Testing

@Suite("NearCacheSessionStore", .timeLimit(.minutes(3)))
struct NearCacheSessionStoreTests {
    @Test(arguments: SessionStoreConformance.Check.allCases)
    func conformance(_ check: SessionStoreConformance.Check) async throws {
        let clock = ManualClock()
        let options = SessionStoreConformance.Options.manualClock(clock, maximumPayloadSize: MemorySessionStoreConfiguration().maximumPayloadSize)
        try await SessionStoreConformance.run(check, options: options) {
            NearCacheSessionStore(backing: MemorySessionStore(clock: clock))
        }
    }

    /// Two app servers, each with its own near cache over one store: whatever one writes, the other never
    /// serves its older cached copy.
    @Test func aNodeNeverServesAStaleEntryAfterAnotherNodeWrote() async throws {
        let backing = MemorySessionStore()
        let nodeA = NearCacheSessionStore(backing: backing)
        let nodeB = NearCacheSessionStore(backing: backing)
        var version = try await nodeA.save(StoredSession(id: "s", payload: [0], userID: "ann"), ttl: .seconds(60), expectedVersion: 0)
        #expect(try await nodeB.load(id: "s")?.payload == [0])
        for round in 1...50 {
            let payload = [UInt8(round)]
            version = try await nodeA.save(StoredSession(id: "s", payload: payload, userID: "ann"), ttl: .seconds(60), expectedVersion: version)
            let seenByB = try #require(try await nodeB.load(id: "s"))
            #expect(seenByB.payload == payload && seenByB.version == version, "round \(round)")
            #expect(try await nodeB.load(id: "s")?.payload == payload)  // now a hit
        }
        let statisticsB = nodeB.statistics
        #expect(statisticsB.misses == 1)
        #expect(statisticsB.staleEntries == 50)
        #expect(statisticsB.hits == 50)
        #expect(statisticsB.payloadBytesSaved == 50)

        try await nodeA.delete(id: "s")
        #expect(try await nodeB.load(id: "s") == nil, "a delete on another node is seen at once")
        #expect(nodeB.statistics.entries == 0)
    }

    /// A hit asks the store for the version only; the record itself is fetched on misses and changes.
    @Test func aHitFetchesOnlyTheVersion() async throws {
        let backing = CountingSessionStore(MemorySessionStore())
        let cache = NearCacheSessionStore(backing: backing)
        _ = try await cache.save(StoredSession(id: "s", payload: Array(repeating: 7, count: 1000)), ttl: .seconds(60), expectedVersion: 0)
        for _ in 0..<10 { #expect(try await cache.load(id: "s")?.payload.count == 1000) }
        #expect(backing.calls == ["save": 1, "version": 10])
        let statistics = cache.statistics
        #expect(statistics.hits == 10 && statistics.misses == 0 && statistics.storeRoundTrips == 10)
        #expect(statistics.payloadFetchesSaved == 10 && statistics.payloadBytesSaved == 10_000)
    }

    @Test func keepsAtMostMaximumEntriesDroppingTheLeastRecentlyUsed() async throws {
        let cache = NearCacheSessionStore(backing: MemorySessionStore(), configuration: .init(maximumEntries: 2))
        for id in ["a", "b", "c"] {
            _ = try await cache.save(StoredSession(id: id, payload: [1]), ttl: .seconds(60), expectedVersion: 0)
        }
        let statistics = cache.statistics
        #expect(statistics.entries == 2 && statistics.evictions == 1)
        #expect(try await cache.load(id: "a")?.payload == [1], "an evicted entry is loaded from the store")
        #expect(cache.statistics.misses == 1)
    }

    @Test func aConflictDropsTheCachedCopy() async throws {
        let backing = MemorySessionStore()
        let nodeA = NearCacheSessionStore(backing: backing)
        let nodeB = NearCacheSessionStore(backing: backing)
        _ = try await nodeA.save(StoredSession(id: "s", payload: [1]), ttl: .seconds(60), expectedVersion: 0)
        _ = try await nodeB.load(id: "s")
        _ = try await nodeA.save(StoredSession(id: "s", payload: [2]), ttl: .seconds(60), expectedVersion: 1)
        let error = await #expect(throws: SessionStoreError.self) {
            _ = try await nodeB.save(StoredSession(id: "s", payload: [3]), ttl: .seconds(60), expectedVersion: 1)
        }
        #expect(error?.isConflict == true)
        #expect(nodeB.statistics.entries == 0)
        #expect(try await nodeB.load(id: "s")?.payload == [2])
    }
}

/// A real store that also counts which operations reached it.
private final class CountingSessionStore: SessionStore {
    private let backing: any SessionStore
    private let counts = Mutex<[String: Int]>([:])
    init(_ backing: any SessionStore) { self.backing = backing }

    var calls: [String: Int] { counts.withLock { $0 } }
    private func count(_ name: String) { counts.withLock { $0[name, default: 0] += 1 } }

    func load(id: String) async throws -> StoredSession? { count("load"); return try await backing.load(id: id) }
    func save(_ session: StoredSession, ttl: Duration, expectedVersion: UInt64?) async throws -> UInt64 {
        count("save")
        return try await backing.save(session, ttl: ttl, expectedVersion: expectedVersion)
    }
    func delete(id: String) async throws { count("delete"); try await backing.delete(id: id) }
    func touch(id: String, ttl: Duration) async throws -> Bool { count("touch"); return try await backing.touch(id: id, ttl: ttl) }
    func version(id: String) async throws -> UInt64? { count("version"); return try await backing.version(id: id) }
    func sessionIDs(forUser userID: String) async throws -> [String] { count("sessionIDs"); return try await backing.sessionIDs(forUser: userID) }
}
