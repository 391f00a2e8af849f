import ConcordSessions
import ConcordSessionsTesting
import Testing

@Suite(.timeLimit(.minutes(3))) struct MemorySessionStoreTests {
    @Test(arguments: SessionStoreConformance.Check.allCases)
    func conformance(_ check: SessionStoreConformance.Check) async throws {
        let clock = ManualClock()
        let configuration = MemorySessionStoreConfiguration(maximumPayloadSize: 256 * 1024)
        try await SessionStoreConformance.run(check, options: .manualClock(clock, maximumPayloadSize: 256 * 1024)) {
            MemorySessionStore(configuration: configuration, clock: clock)
        }
    }

    @Test func conformanceOnTheContinuousClock() async throws {
        // The real clock with a short TTL, so expiry also holds outside the manual clock (long enough that a loaded
        // machine completes a save-and-load inside it).
        let options = SessionStoreConformance.Options(shortTTL: .milliseconds(500), expiryMargin: .milliseconds(100))
        try await SessionStoreConformance.run([.expiry, .touchExtendsLife, .concurrentUpdates], options: options) {
            MemorySessionStore()
        }
    }

    @Test func evictsTheLeastRecentlyUsedSessionWhenFull() async throws {
        let store = MemorySessionStore(configuration: .init(maximumSessions: 3), clock: ManualClock())
        let ids = (0..<4).map { _ in SessionID.generate() }
        for id in ids.prefix(3) { _ = try await store.save(StoredSession(id: id, payload: [1]), ttl: .seconds(60), expectedVersion: nil) }
        _ = try await store.load(id: ids[0])  // now ids[1] is the least recently used
        _ = try await store.save(StoredSession(id: ids[3], payload: [2]), ttl: .seconds(60), expectedVersion: nil)
        #expect(try await store.load(id: ids[1]) == nil)
        for id in [ids[0], ids[2], ids[3]] { #expect(try await store.load(id: id) != nil) }
        #expect(store.statistics.evictions == 1)
        #expect(store.statistics.sessions == 3)
    }

    /// Nothing runs the sweep (the `local` strategy's private store): new sessions still shed expired ones.
    @Test func newSessionsShedExpiredOnesWithoutASweep() async throws {
        let clock = ManualClock()
        let store = MemorySessionStore(configuration: .init(maximumSessions: 1_000), clock: clock)
        for _ in 0..<10 {
            _ = try await store.save(StoredSession(id: SessionID.generate(), payload: [1]), ttl: .seconds(5), expectedVersion: nil)
        }
        clock.advance(by: .seconds(6))
        let fresh = (0..<5).map { _ in SessionID.generate() }
        for id in fresh { _ = try await store.save(StoredSession(id: id, payload: [2]), ttl: .seconds(60), expectedVersion: nil) }
        #expect(store.statistics.sessions == 5, "the ten expired ones went, two per new session")
        #expect(store.statistics.expirations == 10)
        #expect(store.statistics.evictions == 0)
        for id in fresh { #expect(try await store.load(id: id)?.payload == [2]) }
    }

    @Test func rewritingAnExistingSessionEvictsNothing() async throws {
        let store = MemorySessionStore(configuration: .init(maximumSessions: 2), clock: ManualClock())
        let (a, b) = (SessionID.generate(), SessionID.generate())
        for id in [a, b, a, b, a] { _ = try await store.save(StoredSession(id: id, payload: []), ttl: .seconds(60), expectedVersion: nil) }
        #expect(store.statistics.evictions == 0)
        #expect(try await store.version(id: a) == 3)
    }

    @Test func evictionAlsoClearsTheUserIndex() async throws {
        let store = MemorySessionStore(configuration: .init(maximumSessions: 1), clock: ManualClock())
        let (a, b) = (SessionID.generate(), SessionID.generate())
        _ = try await store.save(StoredSession(id: a, payload: [], userID: "ivan"), ttl: .seconds(60), expectedVersion: nil)
        _ = try await store.save(StoredSession(id: b, payload: [], userID: "judy"), ttl: .seconds(60), expectedVersion: nil)
        #expect(try await store.sessionIDs(forUser: "ivan") == [])
        #expect(try await store.deleteAll(forUser: "ivan") == 0)
        #expect(try await store.sessionIDs(forUser: "judy") == [b])
    }

    @Test func periodicSweepRemovesExpiredSessionsWithoutReads() async throws {
        let clock = ManualClock()
        let store = MemorySessionStore(configuration: .init(sweepInterval: .seconds(10)), clock: clock)
        let (short, long) = (SessionID.generate(), SessionID.generate())
        _ = try await store.save(StoredSession(id: short, payload: [1]), ttl: .seconds(5), expectedVersion: nil)
        _ = try await store.save(StoredSession(id: long, payload: [2]), ttl: .seconds(60), expectedVersion: nil)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await store.run() }
            try await waitUntil { clock.sleeperCount == 1 }
            clock.advance(by: .seconds(10))
            try await waitUntil { store.statistics.sweeps == 1 }
            #expect(store.statistics.sessions == 1)
            #expect(store.statistics.expirations == 1)
            group.cancelAll()
            try await group.waitForAll()  // run() returns normally on cancellation
        }
        #expect(try await store.load(id: long)?.payload == [2])
    }

    @Test func sweepRunsOnEveryInterval() async throws {
        let clock = ManualClock()
        let store = MemorySessionStore(configuration: .init(sweepInterval: .seconds(1)), clock: clock)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await store.run() }
            for round in 1...3 {
                try await waitUntil { clock.sleeperCount == 1 }
                clock.advance(by: .seconds(1))
                try await waitUntil { store.statistics.sweeps == round }
            }
            group.cancelAll()
        }
        #expect(store.statistics.sweeps == 3)
    }

    @Test func refusesPayloadsOverTheLimitWithTheSizes() async throws {
        let store = MemorySessionStore(configuration: .init(maximumPayloadSize: 10), clock: ManualClock())
        let error = await #expect(throws: SessionStoreError.self) {
            _ = try await store.save(StoredSession(id: SessionID.generate(), payload: Array(repeating: 0, count: 11)), ttl: .seconds(1), expectedVersion: nil)
        }
        #expect(error?.isTooLarge == true)
        #expect(error?.description == "session too large: 11 bytes, the limit is 10 bytes")
    }

    @Test func manyConcurrentCallersKeepTheIndexConsistent() async throws {
        let store = MemorySessionStore(configuration: .init(maximumSessions: 64), clock: ManualClock())
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<8 {
                group.addTask {
                    for round in 0..<200 {
                        let id = SessionID.generate()
                        _ = try await store.save(StoredSession(id: id, payload: [UInt8(round & 0xFF)], userID: "u\(worker % 3)"),
                                                 ttl: .seconds(60), expectedVersion: nil)
                        if round % 3 == 0 { try await store.delete(id: id) }
                        _ = try await store.load(id: id)
                    }
                }
            }
            try await group.waitForAll()
        }
        let statistics = store.statistics
        #expect(statistics.sessions <= 64)
        var indexed = 0
        for user in ["u0", "u1", "u2"] { indexed += try await store.sessionIDs(forUser: user).count }
        #expect(indexed == statistics.sessions)
    }
}

