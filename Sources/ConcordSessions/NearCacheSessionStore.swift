import Synchronization

/// An in-process cache in front of any ``SessionStore`` (the `store+near-cache` strategy) that never serves a
/// stale session.
///
/// Every load of a cached id asks the backing store for the current version only
/// (``SessionStore/version(id:)``) and returns the cached record only when the versions match; otherwise the
/// entry is dropped and the record loaded. So a node never serves an old session after another node wrote it;
/// what a hit saves is the payload transfer (see ``NearCacheSessionStoreStatistics``). Writes go to the store
/// first and are cached with the version the store assigned.
///
/// Versions identify content because Concord never re-creates a deleted or expired id (new sessions get fresh
/// random ids); an app that re-creates ids itself should not put a near cache in front of its store.
public final class NearCacheSessionStore: SessionStore {
    private struct State {
        var entries = LRUTable<String, StoredSession>()
        var statistics = NearCacheSessionStoreStatistics(
            entries: 0, hits: 0, misses: 0, staleEntries: 0, evictions: 0, storeRoundTrips: 0, payloadBytesSaved: 0)

        /// Caches `session` unless a newer version is cached already (a concurrent save on this node).
        mutating func remember(_ session: StoredSession, configuration: NearCacheSessionStoreConfiguration) {
            if let cached = entries.peek(session.id), cached.version > session.version { return }
            guard session.payload.count <= configuration.maximumEntryPayloadSize else {
                entries.remove(session.id)
                return
            }
            if entries.peek(session.id) == nil {
                while entries.count >= configuration.maximumEntries, let victim = entries.leastRecent {
                    entries.remove(victim.key)
                    statistics.evictions += 1
                }
            }
            entries.set(session.id, session)
        }
    }

    public let configuration: NearCacheSessionStoreConfiguration
    /// The store that holds the truth.
    public let backing: any SessionStore
    private let state = Mutex(State())

    public func checkAnswers() async -> SessionStoreError? { await backing.checkAnswers() }

    public init(backing: any SessionStore, configuration: NearCacheSessionStoreConfiguration = .init()) {
        self.backing = backing
        self.configuration = configuration
    }

    /// Counters, and the number of entries cached now.
    public var statistics: NearCacheSessionStoreStatistics {
        state.withLock { state in
            var statistics = state.statistics
            statistics.entries = state.entries.count
            return statistics
        }
    }

    public func load(id: String) async throws -> StoredSession? {
        if let cached = state.withLock({ $0.entries.peek(id) }) {
            let current = try await countingRoundTrip { try await backing.version(id: id) }
            let hit: StoredSession? = state.withLock { state in
                if current == cached.version {
                    state.statistics.hits += 1
                    state.statistics.payloadBytesSaved += cached.payload.count
                    _ = state.entries.use(id)
                    return cached
                }
                state.statistics.staleEntries += 1
                if state.entries.peek(id)?.version == cached.version { state.entries.remove(id) }
                return nil
            }
            if let hit { return hit }
            if current == nil { return nil }
        } else {
            state.withLock { $0.statistics.misses += 1 }
        }
        guard let loaded = try await countingRoundTrip({ try await backing.load(id: id) }) else { return nil }
        state.withLock { $0.remember(loaded, configuration: configuration) }
        return loaded
    }

    public func save(_ session: StoredSession, ttl: Duration, expectedVersion: UInt64?) async throws -> UInt64 {
        do {
            let version = try await backing.save(session, ttl: ttl, expectedVersion: expectedVersion)
            var stored = session
            stored.version = version
            state.withLock { $0.remember(stored, configuration: configuration) }
            return version
        } catch {
            // A conflict means the cached copy is old; any other failure leaves it unknown.
            state.withLock { _ = $0.entries.remove(session.id) }
            throw error
        }
    }

    public func delete(id: String) async throws {
        state.withLock { _ = $0.entries.remove(id) }
        try await backing.delete(id: id)
    }

    public func touch(id: String, ttl: Duration) async throws -> Bool {
        let exists = try await backing.touch(id: id, ttl: ttl)
        if !exists { state.withLock { _ = $0.entries.remove(id) } }
        return exists
    }

    public func version(id: String) async throws -> UInt64? {
        try await backing.version(id: id)
    }

    public func sessionIDs(forUser userID: String) async throws -> [String] {
        try await backing.sessionIDs(forUser: userID)
    }

    public func deleteAll(forUser userID: String) async throws -> Int {
        state.withLock { state in
            for id in state.entries.keys(where: { $0.userID == userID }) { state.entries.remove(id) }
        }
        return try await backing.deleteAll(forUser: userID)
    }

    private func countingRoundTrip<T>(_ call: () async throws -> T) async throws -> T {
        state.withLock { $0.statistics.storeRoundTrips += 1 }
        return try await call()
    }
}
