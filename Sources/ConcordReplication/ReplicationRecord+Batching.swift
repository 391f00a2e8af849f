extension ReplicationRecord {
    /// About how many bytes this record takes in a frame (exact up to the fixed-size fields).
    var encodedSizeEstimate: Int {
        39 + id.utf8.count + origin.utf8.count + (userID.map { 2 + $0.utf8.count } ?? 0)
            + (payload.map { 4 + $0.count } ?? 0)
    }
}

extension Array where Element == ReplicationRecord {
    /// Splits records into frame-sized groups: each at most `maximumRecords` records and, unless one record alone
    /// is larger, at most `maximumBytes`.
    func chunked(maximumRecords: Int, maximumBytes: Int) -> [[ReplicationRecord]] {
        var chunks: [[ReplicationRecord]] = []
        var current: [ReplicationRecord] = []
        var currentBytes = 0
        for record in self {
            let size = record.encodedSizeEstimate
            if !current.isEmpty && (current.count >= maximumRecords || currentBytes + size > maximumBytes) {
                chunks.append(current)
                current = []
                currentBytes = 0
            }
            current.append(record)
            currentBytes += size
        }
        if !current.isEmpty { chunks.append(current) }
        return chunks
    }
}
