import ConcordSessions
import Synchronization

/// This node's copy of the sessions it holds: turns local store operations into stamped ``ReplicationRecord``s and
/// merges records from peers. Shared by the store (local calls) and the node (peer traffic).
final class LocalReplica: Sendable {
    private struct State {
        var table = ReplicaTable()
        var clock = HybridLogicalClock()
    }

    let nodeID: String
    private let wallClock: SessionWallClock
    private let maximumSessionBytes: Int
    private let tombstoneLifetime: UInt64
    private let state = Mutex(State())

    /// Longest id or user id accepted; keeps every string well inside a frame's 16-bit length fields.
    static let maximumIdentifierBytes = 1024

    init(nodeID: String, wallClock: SessionWallClock, maximumSessionBytes: Int, tombstoneLifetime: Duration) {
        self.nodeID = nodeID
        self.wallClock = wallClock
        self.maximumSessionBytes = maximumSessionBytes
        self.tombstoneLifetime = tombstoneLifetime.nonNegativeMilliseconds
    }

    var count: Int { state.withLock { $0.table.count } }

    private var nowMilliseconds: UInt64 { UInt64(max(0, wallClock.now)) }

    func load(id: String) -> StoredSession? {
        let now = nowMilliseconds
        guard let record = state.withLock({ $0.table.live(id, now: now) }), let payload = record.payload else {
            return nil
        }
        return StoredSession(id: id, payload: payload, version: record.version, userID: record.userID)
    }

    /// The live session among the local copy of `id` and `others` (e.g. holders' answers), by last-writer-wins,
    /// without storing `others`.
    func load(id: String, mergedWith others: [ReplicationRecord]) -> StoredSession? {
        guard !others.isEmpty else { return load(id: id) }
        let now = nowMilliseconds
        var newest = record(id: id)
        for other in others where other.id == id {
            if let current = newest, !other.supersedes(current) { continue }
            newest = other
        }
        guard let newest, newest.isLive(at: now), let payload = newest.payload else { return nil }
        return StoredSession(id: id, payload: payload, version: newest.version, userID: newest.userID)
    }

    /// A hybrid-clock timestamp `milliseconds` before now, for age comparisons.
    func hybridTimestamp(millisecondsAgo milliseconds: UInt64) -> UInt64 {
        let now = nowMilliseconds
        return (now > milliseconds ? now - milliseconds : 0) << HybridLogicalClock.logicalBits
    }

    /// The stored record for `id` (live, expired or tombstone), for merging read-through answers.
    func record(id: String) -> ReplicationRecord? {
        state.withLock { $0.table[id] }
    }

    /// Applies a local save and returns the record to replicate.
    func save(
        _ session: StoredSession,
        ttl: Duration,
        expectedVersion: UInt64?
    ) throws(SessionStoreError) -> ReplicationRecord {
        guard session.payload.count <= maximumSessionBytes else {
            throw .tooLarge(size: session.payload.count, limit: maximumSessionBytes)
        }
        let longest = max(session.id.utf8.count, session.userID?.utf8.count ?? 0)
        guard longest <= Self.maximumIdentifierBytes else {
            throw .tooLarge(size: longest, limit: Self.maximumIdentifierBytes)
        }
        let now = nowMilliseconds
        let result: Result<ReplicationRecord, SessionStoreError> = state.withLock { state in
            let live = state.table.live(session.id, now: now)
            if let expectedVersion, expectedVersion != (live?.version ?? 0) {
                return .failure(.conflict(expected: expectedVersion, actual: live?.version))
            }
            let timestamp = state.clock.now(wallMilliseconds: now)
            let record = ReplicationRecord(
                id: session.id,
                incarnation: live?.incarnation ?? timestamp,
                version: (live?.version ?? 0) + 1,
                timestamp: timestamp,
                origin: nodeID,
                expiresAt: now + ttl.nonNegativeMilliseconds,
                userID: session.userID,
                payload: session.payload)
            state.table.apply(record)
            return .success(record)
        }
        return try result.get()
    }

    /// Extends a live session; returns the record to replicate, or `nil` when the session is not alive.
    func touch(id: String, ttl: Duration) -> ReplicationRecord? {
        let now = nowMilliseconds
        return state.withLock { state in
            guard var record = state.table.live(id, now: now) else { return nil }
            record.timestamp = state.clock.now(wallMilliseconds: now)
            record.origin = nodeID
            record.expiresAt = now + ttl.nonNegativeMilliseconds
            state.table.apply(record)
            return record
        }
    }

    /// Replaces `id` with a tombstone and returns it to replicate. The tombstone takes a new incarnation, so it beats
    /// every write of the life it ends, even one this node has not seen yet, and loses to any later re-creation.
    func delete(id: String) -> ReplicationRecord {
        let now = nowMilliseconds
        return state.withLock { state in
            let timestamp = state.clock.now(wallMilliseconds: now)
            let tombstone = ReplicationRecord(
                id: id,
                incarnation: timestamp,
                version: state.table[id]?.version ?? 0,
                timestamp: timestamp,
                origin: nodeID,
                expiresAt: now + tombstoneLifetime,
                userID: nil,
                payload: nil)
            state.table.apply(tombstone)
            return tombstone
        }
    }

    /// Merges records from a peer; returns those that changed this copy.
    @discardableResult
    func apply(_ records: [ReplicationRecord]) -> [ReplicationRecord] {
        state.withLock { state in
            var changed: [ReplicationRecord] = []
            for record in records {
                state.clock.observe(record.timestamp)
                if state.table.apply(record) { changed.append(record) }
            }
            return changed
        }
    }

    /// Forgets records this node no longer holds a placement for (`ring` after a hand-off).
    func remove(_ ids: some Sequence<String>) {
        state.withLock { state in
            for id in ids { state.table.remove(id) }
        }
    }

    func liveRecords(forUser userID: String) -> [ReplicationRecord] {
        let now = nowMilliseconds
        return state.withLock { state in
            state.table.liveIDs(forUser: userID, now: now).compactMap { state.table[$0] }
        }
    }

    /// The live ids of `userID` among the local copy and `others` (peers' answers), each id decided by
    /// last-writer-wins against the local record, so a delete made here hides a peer's copy it has not reached yet.
    func liveIDs(forUser userID: String, mergedWith others: [ReplicationRecord]) -> [String] {
        let now = nowMilliseconds
        return state.withLock { state in
            var ids = Set(state.table.liveIDs(forUser: userID, now: now))
            for other in others where other.userID == userID && !ids.contains(other.id) {
                if let local = state.table[other.id], !other.supersedes(local) { continue }
                if other.isLive(at: now) { ids.insert(other.id) }
            }
            return ids.sorted()
        }
    }

    func liveIDs(forUser userID: String) -> [String] {
        let now = nowMilliseconds
        return state.withLock { $0.table.liveIDs(forUser: userID, now: now) }
    }

    /// Every record (tombstones included, so deletes travel too) that `include` accepts, for state transfer.
    func snapshot(where include: (String) -> Bool = { _ in true }) -> [ReplicationRecord] {
        let now = nowMilliseconds
        return state.withLock { state in
            state.table.records.values.filter { $0.expiresAt > now && include($0.id) }
        }
    }

    /// The records among `ids` this node has (tombstones included), for read-through.
    func records(ids: [String]) -> [ReplicationRecord] {
        state.withLock { state in ids.compactMap { state.table[$0] } }
    }

    @discardableResult
    func sweep() -> Int {
        let now = nowMilliseconds
        return state.withLock { $0.table.sweep(now: now) }
    }
}
