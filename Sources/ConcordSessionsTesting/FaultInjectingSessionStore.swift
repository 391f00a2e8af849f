import ConcordSessions
import Synchronization

/// Wraps a real store and can be switched into an outage: while down, every call throws
/// ``SessionStoreError/unavailable(_:)`` like a backend that cannot be reached. Tests use it to check the
/// "store down → 503" path without stopping a server.
public final class FaultInjectingSessionStore: SessionStore {
    public let base: any SessionStore
    private let down = Atomic(false)
    private let writesDown = Atomic(false)
    private let injected = Mutex<SessionStoreError?>(nil)

    public init(wrapping base: any SessionStore) { self.base = base }

    /// Whether calls currently fail.
    public var isDown: Bool {
        get { down.load(ordering: .relaxed) }
        set { down.store(newValue, ordering: .relaxed) }
    }

    /// Whether writes (save, delete, touch) fail as unavailable while reads work — a store whose write lock another
    /// process holds, or a replica.
    public var writesAreDown: Bool {
        get { writesDown.load(ordering: .relaxed) }
        set { writesDown.store(newValue, ordering: .relaxed) }
    }

    /// An error every call throws while set (taking precedence over ``isDown``), e.g. `.corrupt(…)`.
    public var failure: SessionStoreError? {
        get { injected.withLock { $0 } }
        set { injected.withLock { $0 = newValue } }
    }

    private func check() throws {
        if let failure { throw failure }
        if isDown { throw SessionStoreError.unavailable("injected outage") }
    }

    public func load(id: String) async throws -> StoredSession? {
        try check()
        return try await base.load(id: id)
    }

    private func checkWrite() throws {
        try check()
        if writesAreDown { throw SessionStoreError.unavailable("injected write outage") }
    }

    public func save(_ session: StoredSession, ttl: Duration, expectedVersion: UInt64?) async throws -> UInt64 {
        try checkWrite()
        return try await base.save(session, ttl: ttl, expectedVersion: expectedVersion)
    }

    public func delete(id: String) async throws {
        try checkWrite()
        try await base.delete(id: id)
    }

    public func touch(id: String, ttl: Duration) async throws -> Bool {
        try checkWrite()
        return try await base.touch(id: id, ttl: ttl)
    }

    public func version(id: String) async throws -> UInt64? {
        try check()
        return try await base.version(id: id)
    }

    public func sessionIDs(forUser userID: String) async throws -> [String] {
        try check()
        return try await base.sessionIDs(forUser: userID)
    }

    public func deleteAll(forUser userID: String) async throws -> Int {
        try checkWrite()
        return try await base.deleteAll(forUser: userID)
    }
}
