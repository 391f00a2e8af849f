import ConcordSessions
import ConcordSessionsTesting
import Synchronization
import Testing

@Suite(.timeLimit(.minutes(3))) struct ReadRetryingSessionStoreTests {
    @Test(arguments: SessionStoreConformance.Check.allCases)
    func conformance(_ check: SessionStoreConformance.Check) async throws {
        let clock = ManualClock()
        let configuration = MemorySessionStoreConfiguration(maximumPayloadSize: 256 * 1024)
        try await SessionStoreConformance.run(check, options: .manualClock(clock, maximumPayloadSize: 256 * 1024)) {
            ReadRetryingSessionStore(backing: MemorySessionStore(configuration: configuration, clock: clock), budget: .seconds(1))
        }
    }

    @Test func aReadWaitsOutAnOutageWithinItsBudget() async throws {
        let backing = SwitchableSessionStore()
        let store = ReadRetryingSessionStore(backing: backing, budget: .seconds(10), interval: .milliseconds(10))
        let version = try await store.save(StoredSession(id: "s", payload: [7]), ttl: .seconds(60), expectedVersion: nil)
        backing.isDown = true
        async let loaded = store.load(id: "s")
        try await Task.sleep(for: .milliseconds(200))
        backing.isDown = false
        let session = try #require(try await loaded)
        #expect(session.payload == [7] && session.version == version)
        #expect(backing.calls(of: "load") >= 2, "tried more than once")
        #expect(store.statistics == ReadRetryingSessionStoreStatistics(retriedReads: 1, recoveredReads: 1, exhaustedReads: 0))
    }

    @Test func aReadGivesUpWhenItsBudgetIsSpent() async throws {
        let backing = SwitchableSessionStore()
        backing.isDown = true
        let store = ReadRetryingSessionStore(backing: backing, budget: .milliseconds(300), interval: .milliseconds(20))
        let started = ContinuousClock.now
        await #expect { _ = try await store.version(id: "s") } throws: { ($0 as? SessionStoreError)?.isUnavailable == true }
        let waited = ContinuousClock.now - started
        // It waited about its budget, and then gave up (a loaded machine can oversleep a pause by seconds).
        #expect(waited >= .milliseconds(250) && waited < .seconds(30), "waited \(waited)")
        #expect(store.statistics.exhaustedReads == 1)
    }

    @Test func aWriteThatNeverLeftWaitsOutAnOutage() async throws {
        let backing = SwitchableSessionStore()
        let store = ReadRetryingSessionStore(backing: backing, budget: .seconds(10), interval: .milliseconds(10))
        backing.isDown = true
        backing.failuresAreNotApplied = true
        async let saved = store.save(StoredSession(id: "s", payload: [1]), ttl: .seconds(60), expectedVersion: nil)
        async let deleted: Void = store.delete(id: "gone")
        try await Task.sleep(for: .milliseconds(200))
        backing.isDown = false
        #expect(try await saved == 1)
        try await deleted
        #expect(backing.calls(of: "save") >= 2 && backing.calls(of: "delete") >= 2, "tried more than once")
        #expect(try await store.load(id: "s")?.payload == [1])
        #expect(store.statistics == ReadRetryingSessionStoreStatistics(retriedWrites: 2, recoveredWrites: 2))
    }

    @Test func writesThatMayHaveBeenAppliedAndOtherErrorsAreNeverRetried() async throws {
        let backing = SwitchableSessionStore()
        let store = ReadRetryingSessionStore(backing: backing, budget: .seconds(10), interval: .milliseconds(10))
        _ = try await store.save(StoredSession(id: "s", payload: [1]), ttl: .seconds(60), expectedVersion: nil)
        // A conflict is an answer, not an outage.
        await #expect(throws: SessionStoreError.self) {
            try await store.save(StoredSession(id: "s", payload: [2]), ttl: .seconds(60), expectedVersion: 99)
        }
        backing.isDown = true
        let started = ContinuousClock.now
        await #expect(throws: SessionStoreError.self) { try await store.save(StoredSession(id: "s", payload: [3]), ttl: .seconds(60), expectedVersion: nil) }
        await #expect(throws: SessionStoreError.self) { try await store.delete(id: "s") }
        await #expect(throws: SessionStoreError.self) { _ = try await store.touch(id: "s", ttl: .seconds(60)) }
        await #expect(throws: SessionStoreError.self) { _ = try await store.deleteAll(forUser: "u") }
        #expect(ContinuousClock.now - started < .seconds(8), "a retried write would have taken its 10-s budget")
        #expect(backing.calls(of: "save") == 3 && backing.calls(of: "delete") == 1 && backing.calls(of: "touch") == 1)
        #expect(store.statistics.retriedReads == 0)
    }
}

/// A memory store that can be switched "down": every call then fails with `SessionStoreError.unavailable`. Counts
/// the calls by name.
private final class SwitchableSessionStore: SessionStore {
    private let backing = MemorySessionStore()
    private let state = Mutex((down: false, notApplied: false, calls: [String: Int]()))

    var isDown: Bool {
        get { state.withLock { $0.down } }
        set { state.withLock { $0.down = newValue } }
    }

    /// Whether its failures say the operation never reached the store (``SessionStoreError/isUnavailableAndNotApplied``).
    var failuresAreNotApplied: Bool {
        get { state.withLock { $0.notApplied } }
        set { state.withLock { $0.notApplied = newValue } }
    }

    func calls(of name: String) -> Int { state.withLock { $0.calls[name] ?? 0 } }

    private func call(_ name: String) throws {
        let (down, notApplied) = state.withLock { state in
            state.calls[name, default: 0] += 1
            return (state.down, state.notApplied)
        }
        if down { throw SessionStoreError.unavailable("switched off", notApplied: notApplied) }
    }

    func load(id: String) async throws -> StoredSession? {
        try call("load")
        return try await backing.load(id: id)
    }

    func version(id: String) async throws -> UInt64? {
        try call("version")
        return try await backing.version(id: id)
    }

    func sessionIDs(forUser userID: String) async throws -> [String] {
        try call("sessionIDs")
        return try await backing.sessionIDs(forUser: userID)
    }

    func save(_ session: StoredSession, ttl: Duration, expectedVersion: UInt64?) async throws -> UInt64 {
        try call("save")
        return try await backing.save(session, ttl: ttl, expectedVersion: expectedVersion)
    }

    func delete(id: String) async throws {
        try call("delete")
        try await backing.delete(id: id)
    }

    func touch(id: String, ttl: Duration) async throws -> Bool {
        try call("touch")
        return try await backing.touch(id: id, ttl: ttl)
    }

    func deleteAll(forUser userID: String) async throws -> Int {
        try call("deleteAll")
        return try await backing.deleteAll(forUser: userID)
    }
}
