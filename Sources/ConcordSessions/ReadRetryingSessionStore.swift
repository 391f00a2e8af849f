import Synchronization

/// In front of any ``SessionStore``: a read that finds the store unavailable (``SessionStoreError/isUnavailable``)
/// is tried again every `interval` until it succeeds or `budget` has passed since its first try. A short outage — a
/// Redis Sentinel failover, a PostgreSQL restart — then costs the requests that read during it some latency
/// instead of an error (most requests read their session first).
///
/// Reads (`load`, `version`, `sessionIDs(forUser:)`) are retried on any unavailable error. A write (`save`,
/// `delete`, `touch`, `deleteAll`) is retried only when the store knows it had no effect
/// (``SessionStoreError/isUnavailableAndNotApplied``: it never left the app — the Redis and PostgreSQL stores say so
/// when no connection could be had, SQLite when a lock was not granted); otherwise it may still have been applied (its reply lost, or a timeout after it was
/// sent), and trying it again could report a conflict for the write that won, or repeat a delete, so its error
/// reaches the caller at once.
public final class ReadRetryingSessionStore: SessionStore {
    /// The store that holds the sessions.
    public let backing: any SessionStore
    /// How long one read may keep trying.
    public let budget: Duration
    /// The pause between two tries.
    public let interval: Duration
    private let counters = Mutex(ReadRetryingSessionStoreStatistics())

    public init(backing: any SessionStore, budget: Duration, interval: Duration = .milliseconds(50)) {
        self.backing = backing
        self.budget = budget
        self.interval = interval
    }

    public func checkAnswers() async -> SessionStoreError? { await backing.checkAnswers() }

    /// What the retries did so far.
    public var statistics: ReadRetryingSessionStoreStatistics { counters.withLock { $0 } }

    public func load(id: String) async throws -> StoredSession? {
        try await retrying { try await backing.load(id: id) }
    }

    public func version(id: String) async throws -> UInt64? {
        try await retrying { try await backing.version(id: id) }
    }

    public func sessionIDs(forUser userID: String) async throws -> [String] {
        try await retrying { try await backing.sessionIDs(forUser: userID) }
    }

    public func save(_ session: StoredSession, ttl: Duration, expectedVersion: UInt64?) async throws -> UInt64 {
        try await retrying(isWrite: true) { try await backing.save(session, ttl: ttl, expectedVersion: expectedVersion) }
    }

    public func delete(id: String) async throws {
        try await retrying(isWrite: true) { try await backing.delete(id: id) }
    }

    public func touch(id: String, ttl: Duration) async throws -> Bool {
        try await retrying(isWrite: true) { try await backing.touch(id: id, ttl: ttl) }
    }

    public func deleteAll(forUser userID: String) async throws -> Int {
        try await retrying(isWrite: true) { try await backing.deleteAll(forUser: userID) }
    }

    private func retrying<T>(isWrite: Bool = false, _ operation: () async throws -> T) async throws -> T {
        let deadline = ContinuousClock.now.advanced(by: budget)
        var retried = false
        while true {
            do {
                let value = try await operation()
                if retried { counters.withLock { $0.count(.recovered, isWrite: isWrite) } }
                return value
            } catch let error as SessionStoreError where isWrite ? error.isUnavailableAndNotApplied : error.isUnavailable {
                guard ContinuousClock.now.advanced(by: interval) < deadline else {
                    if retried { counters.withLock { $0.count(.exhausted, isWrite: isWrite) } }
                    throw error
                }
                if !retried { counters.withLock { $0.count(.retried, isWrite: isWrite) } }
                retried = true
                try await Task.sleep(for: interval)
            }
        }
    }
}

/// Counters of a ``ReadRetryingSessionStore``.
public struct ReadRetryingSessionStoreStatistics: Sendable, Equatable {
    /// Reads that found the store unavailable and were tried again.
    public var retriedReads = 0
    /// Of those, the ones that then succeeded.
    public var recoveredReads = 0
    /// Of those, the ones whose budget ran out (their error went to the caller).
    public var exhaustedReads = 0
    /// Writes that found the store unavailable before they were sent and were tried again.
    public var retriedWrites = 0
    /// Of those, the ones that then succeeded.
    public var recoveredWrites = 0
    /// Of those, the ones whose budget ran out.
    public var exhaustedWrites = 0

    public init(
        retriedReads: Int = 0, recoveredReads: Int = 0, exhaustedReads: Int = 0,
        retriedWrites: Int = 0, recoveredWrites: Int = 0, exhaustedWrites: Int = 0
    ) {
        self.retriedReads = retriedReads
        self.recoveredReads = recoveredReads
        self.exhaustedReads = exhaustedReads
        self.retriedWrites = retriedWrites
        self.recoveredWrites = recoveredWrites
        self.exhaustedWrites = exhaustedWrites
    }

    enum Outcome { case retried, recovered, exhausted }

    mutating func count(_ outcome: Outcome, isWrite: Bool) {
        switch (outcome, isWrite) {
        case (.retried, false): retriedReads += 1
        case (.recovered, false): recoveredReads += 1
        case (.exhausted, false): exhaustedReads += 1
        case (.retried, true): retriedWrites += 1
        case (.recovered, true): recoveredWrites += 1
        case (.exhausted, true): exhaustedWrites += 1
        }
    }
}
