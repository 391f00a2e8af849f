/// The writes waiting to go to one peer: coalesced by session id (only the newest write of a session is kept),
/// bounded, and marked for a full push when writes had to be dropped. A pure value; ``PeerLink`` owns it.
struct PeerQueue: Sendable {
    enum EnqueueResult: Equatable {
        /// The write is queued (or merged into a queued write of the same session).
        case queued
        /// The queue holds `capacity` distinct sessions already.
        case full
    }

    let capacity: Int
    private(set) var pending: [String: ReplicationRecord] = [:]
    /// Writes were dropped, so the peer must be sent everything it should hold before the queue is trusted again.
    private(set) var needsFullPush = false

    init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    var count: Int { pending.count }
    var isEmpty: Bool { pending.isEmpty && !needsFullPush }

    mutating func enqueue(_ record: ReplicationRecord) -> EnqueueResult {
        if let queued = pending[record.id] {
            if record.supersedes(queued) { pending[record.id] = record }
            return .queued
        }
        guard pending.count < capacity else { return .full }
        pending[record.id] = record
        return .queued
    }

    /// Drops everything queued and asks for a full push instead (the peer is too far behind for deltas).
    mutating func overflow() {
        pending.removeAll()
        needsFullPush = true
    }

    /// Takes the full-push request, if any; the queued deltas are then redundant and dropped too.
    mutating func takeFullPush() -> Bool {
        guard needsFullPush else { return false }
        needsFullPush = false
        pending.removeAll()
        return true
    }

    /// Removes and returns up to one frame's worth of writes.
    mutating func takeBatch(maximumRecords: Int, maximumBytes: Int) -> [ReplicationRecord] {
        var batch: [ReplicationRecord] = []
        var bytes = 0
        for record in pending.values {
            let size = record.encodedSizeEstimate
            if batch.count >= maximumRecords || (!batch.isEmpty && bytes + size > maximumBytes) { break }
            batch.append(record)
            bytes += size
        }
        for record in batch { pending.removeValue(forKey: record.id) }
        return batch
    }

    /// Puts back writes that were taken but not delivered, unless newer ones for the same sessions arrived since.
    mutating func requeue(_ records: [ReplicationRecord]) {
        for record in records {
            if let queued = pending[record.id], !record.supersedes(queued) { continue }
            pending[record.id] = record
        }
    }
}
