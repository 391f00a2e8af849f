import ConcordSessions
import ConcordSessionsTesting
import Testing

/// Writers that conflict pause before they read the session again (``ConcordSessionConfiguration/conflictBackoff``):
/// without it, 20 parallel cart additions against Redis had one or two give up with 409 in most rounds; with it, 40
/// gave none in five rounds (2026-12-02, `concord app --strategy store --store redis://…`).
@Suite struct ConflictBackoffTests {
    /// Every save of a session that exists conflicts (another writer always got there first).
    struct AlwaysConflicting: SessionStore {
        let inner: MemorySessionStore<ManualClock>
        func load(id: String) async throws -> StoredSession? { try await inner.load(id: id) }
        func save(_ session: StoredSession, ttl: Duration, expectedVersion: UInt64?) async throws -> UInt64 {
            if try await inner.load(id: session.id) != nil {
                throw SessionStoreError.conflict(expected: expectedVersion ?? 0, actual: (expectedVersion ?? 0) + 1)
            }
            return try await inner.save(session, ttl: ttl, expectedVersion: expectedVersion)
        }
        func delete(id: String) async throws { try await inner.delete(id: id) }
        func touch(id: String, ttl: Duration) async throws -> Bool { try await inner.touch(id: id, ttl: ttl) }
        func sessionIDs(forUser userID: String) async throws -> [String] { try await inner.sessionIDs(forUser: userID) }
    }

    @Test func aWriterThatKeepsConflictingPausesLongerEachTimeThenGivesUp() async throws {
        let clock = ManualClock()
        let store = AlwaysConflicting(inner: MemorySessionStore(clock: clock))
        // With 2 ms: at least 1 + 2 + 4 + 8 + 16 + 32 + 64 ms of pauses between the 8 attempts.
        let manager = try SessionManager<ShopSession>(
            configuration: .init(strategy: .store(store), maximumUpdateAttempts: 8, conflictBackoff: .milliseconds(2)),
            wallClock: clock.wallClock())
        let first = SessionHandle<ShopSession>()
        try await manager.load(cookieValue: nil, into: first)
        first.update { $0.cart.append("a") }
        let cookie = try #require(try await manager.commit(first).setValue)

        let second = SessionHandle<ShopSession>()
        try await manager.load(cookieValue: cookie, into: second)
        second.update { $0.cart.append("b") }
        let started = ContinuousClock.now
        do {
            _ = try await manager.commit(second)
            Issue.record("a change that always conflicts was saved")
        } catch let error as SessionError {
            #expect("\(error)".contains("gave up after 8 attempts"), "\(error)")
        }
        #expect(ContinuousClock.now - started >= .milliseconds(127), "the writer paused between its attempts")
    }
}
