import Synchronization

/// A ``SessionStore`` in this process's memory: the `local` strategy, the reference implementation, and the
/// building block of the replicated stores.
///
/// - TTL: every record expires `ttl` after its last save or touch; reads never return an expired record, and
///   ``run()`` sweeps expired records every ``MemorySessionStoreConfiguration/sweepInterval``. Without `run()`,
///   each new record also removes up to two expired ones from the least-recently-used end.
/// - Capacity: at most ``MemorySessionStoreConfiguration/maximumSessions`` records; a new record beyond that
///   evicts the least recently used one (loads, saves and touches count as use).
/// - Concurrency: one `Mutex` guards the whole state; every operation is a short critical section with no
///   suspension inside, which is faster than an actor hop per call.
/// - Time comes from the injected `clock`, so tests move time forward instead of sleeping.
public final class MemorySessionStore<C: Clock>: SessionStore where C.Duration == Duration {
    public let configuration: MemorySessionStoreConfiguration
    public let clock: C
    /// The instant store times count from (see ``MemorySessionStoreState``).
    private let origin: C.Instant
    private let state = Mutex(MemorySessionStoreState())

    /// A store reading time from `clock` (tests pass a manual clock).
    public init(configuration: MemorySessionStoreConfiguration = .init(), clock: C) {
        self.configuration = configuration
        self.clock = clock
        self.origin = clock.now
    }

    /// Now, as a duration since ``origin``.
    private var now: Duration { origin.duration(to: clock.now) }

    /// Counters, and the number of records held now.
    public var statistics: MemorySessionStoreStatistics {
        state.withLock { state in
            var statistics = state.statistics
            statistics.sessions = state.records.count
            return statistics
        }
    }

    public func load(id: String) async throws -> StoredSession? {
        let now = self.now
        return state.withLock { $0.liveSession(id: id, now: now) }
    }

    public func save(_ session: StoredSession, ttl: Duration, expectedVersion: UInt64?) async throws -> UInt64 {
        guard session.payload.count <= configuration.maximumPayloadSize else {
            throw SessionStoreError.tooLarge(size: session.payload.count, limit: configuration.maximumPayloadSize)
        }
        let now = self.now
        let expiresAt = now + ttl
        let maximumSessions = configuration.maximumSessions
        return try state.withLock { state in
            let existing = state.liveRecord(id: session.id, now: now, markUsed: false)
            if let expectedVersion, expectedVersion != (existing?.session.version ?? 0) {
                throw SessionStoreError.conflict(expected: expectedVersion, actual: existing?.session.version)
            }
            var stored = session
            stored.version = (existing?.session.version ?? 0) + 1
            if let oldUser = existing?.session.userID, oldUser != session.userID {
                state.unindex(id: session.id, userID: oldUser)
            }
            if existing == nil {
                // Up to two expired records at the least-recent end go with every new one, so a store that nothing
                // sweeps (``run()`` not running — the `local` strategy's store is private to it) sheds idle
                // sessions as it takes new ones instead of keeping them until it is full.
                for _ in 0..<2 {
                    guard let oldest = state.records.leastRecent, oldest.value.expiresAt <= now else { break }
                    state.removeRecord(id: oldest.key)
                    state.statistics.expirations += 1
                }
                while state.records.count >= maximumSessions, let victim = state.records.leastRecent {
                    state.removeRecord(id: victim.key)
                    state.statistics.evictions += 1
                }
            }
            state.records.set(session.id, MemorySessionStoreState.Record(session: stored, expiresAt: expiresAt))
            if let userID = session.userID { state.idsByUser[userID, default: []].insert(session.id) }
            return stored.version
        }
    }

    public func delete(id: String) async throws {
        state.withLock { $0.removeRecord(id: id) }
    }

    public func touch(id: String, ttl: Duration) async throws -> Bool {
        let now = self.now
        return state.withLock { state in
            guard state.liveRecord(id: id, now: now, markUsed: true) != nil else { return false }
            _ = state.records.modify(id) { $0.expiresAt = now + ttl }
            return true
        }
    }

    public func version(id: String) async throws -> UInt64? {
        let now = self.now
        return state.withLock { $0.liveRecord(id: id, now: now, markUsed: false)?.session.version }
    }

    public func sessionIDs(forUser userID: String) async throws -> [String] {
        let now = self.now
        return state.withLock { state in
            let ids = state.idsByUser[userID] ?? []
            return ids.filter { state.liveRecord(id: $0, now: now, markUsed: false) != nil }.sorted()
        }
    }

    public func deleteAll(forUser userID: String) async throws -> Int {
        let now = self.now
        return state.withLock { state in
            let ids = state.idsByUser[userID] ?? []
            let live = ids.filter { state.liveRecord(id: $0, now: now, markUsed: false) != nil }
            for id in live { state.removeRecord(id: id) }
            return live.count
        }
    }

    /// Removes every expired record now. - Returns: how many were removed.
    @discardableResult
    public func sweep() -> Int {
        let now = self.now
        return state.withLock { state in
            let expired = state.records.keys { $0.expiresAt <= now }
            for id in expired { state.removeRecord(id: id) }
            state.statistics.expirations += expired.count
            state.statistics.sweeps += 1
            return expired.count
        }
    }

    /// Sweeps expired records every ``MemorySessionStoreConfiguration/sweepInterval`` until the task is
    /// cancelled (then it returns normally). ConcordHummingbird wraps it as a service-lifecycle `Service`
    /// that also stops on graceful shutdown.
    public func run() async throws {
        while !Task.isCancelled {
            do {
                try await clock.sleep(for: configuration.sweepInterval)
            } catch is CancellationError {
                return
            }
            sweep()
        }
    }
}

extension MemorySessionStore where C == ContinuousClock {
    /// A store on the continuous clock (the usual choice outside tests).
    public convenience init(configuration: MemorySessionStoreConfiguration = .init()) {
        self.init(configuration: configuration, clock: ContinuousClock())
    }
}

/// The records of a ``MemorySessionStore`` and their indexes. Not nested in the store, which is generic over its
/// clock: a nested type would depend on `C`, and the store is reached as `any SessionStore`, where its code runs
/// unspecialised and would look up that type's metadata at run time on every call. Times are durations since
/// the store's `origin` instant for the same reason.
struct MemorySessionStoreState {
    struct Record {
        var session: StoredSession
        /// Since the store's origin.
        var expiresAt: Duration
    }

    var records = LRUTable<String, Record>()
    var idsByUser: [String: Set<String>] = [:]
    var statistics = MemorySessionStoreStatistics(sessions: 0, evictions: 0, expirations: 0, sweeps: 0)

    mutating func removeRecord(id: String) {
        guard let record = records.remove(id) else { return }
        if let userID = record.session.userID { unindex(id: id, userID: userID) }
    }

    mutating func unindex(id: String, userID: String) {
        guard var ids = idsByUser[userID] else { return }
        ids.remove(id)
        idsByUser[userID] = ids.isEmpty ? nil : ids
    }

    /// The live session for `id`, marking it used, or `nil` (removing it if it has expired). Copies out only the
    /// session, not the whole record: this is every request's store lookup.
    mutating func liveSession(id: String, now: Duration) -> StoredSession? {
        guard let index = liveIndex(id: id, now: now, markUsed: true) else { return nil }
        return records[index].session
    }

    /// The live record for `id`, removing it if it has expired.
    mutating func liveRecord(id: String, now: Duration, markUsed: Bool) -> Record? {
        liveIndex(id: id, now: now, markUsed: markUsed).map { records[$0] }
    }

    /// Where the live record for `id` is, removing it if it has expired.
    private mutating func liveIndex(id: String, now: Duration, markUsed: Bool) -> Int? {
        guard let index = records.index(of: id) else { return nil }
        guard now < records[index].expiresAt else {
            removeRecord(id: id)
            statistics.expirations += 1
            return nil
        }
        if markUsed { records.markUsed(index) }
        return index
    }
}
