/// The sessions one node holds, with tombstones, merged last-writer-wins. A pure value: ``LocalReplica`` keeps it
/// behind a lock and supplies the time.
struct ReplicaTable: Sendable {
    private(set) var records: [String: ReplicationRecord] = [:]
    private var idsByUser: [String: Set<String>] = [:]

    var count: Int { records.count }

    subscript(id: String) -> ReplicationRecord? { records[id] }

    /// The record for `id` if the session is alive at `now`.
    func live(_ id: String, now: UInt64) -> ReplicationRecord? {
        guard let record = records[id], record.isLive(at: now) else { return nil }
        return record
    }

    /// Keeps `record` if it supersedes what is stored for its id (or nothing is).
    /// - Returns: whether the table changed.
    @discardableResult
    mutating func apply(_ record: ReplicationRecord) -> Bool {
        if let current = records[record.id] {
            guard record.supersedes(current) else { return false }
            unindex(current)
        }
        records[record.id] = record
        if let userID = record.userID, record.payload != nil { idsByUser[userID, default: []].insert(record.id) }
        return true
    }

    /// Forgets `id` entirely (no tombstone): used when a node no longer holds a session's placement.
    mutating func remove(_ id: String) {
        guard let record = records.removeValue(forKey: id) else { return }
        unindex(record)
    }

    /// Drops expired sessions and tombstones whose time is up.
    /// - Returns: how many records were dropped.
    @discardableResult
    mutating func sweep(now: UInt64) -> Int {
        let expired = records.values.filter { $0.expiresAt <= now }
        for record in expired { remove(record.id) }
        return expired.count
    }

    /// The ids of the live sessions of `userID`.
    func liveIDs(forUser userID: String, now: UInt64) -> [String] {
        guard let ids = idsByUser[userID] else { return [] }
        return ids.filter { live($0, now: now) != nil }.sorted()
    }

    private mutating func unindex(_ record: ReplicationRecord) {
        guard let userID = record.userID else { return }
        idsByUser[userID]?.remove(record.id)
        if idsByUser[userID]?.isEmpty == true { idsByUser[userID] = nil }
    }
}
