/// Which cluster node (primary) serves each of the 16384 slots: an immutable table, replaced as a whole on refresh.
struct RedisClusterTopology: Sendable, Hashable {
    /// The primaries, in the order of their first slot.
    private(set) var nodes: [RedisEndpoint]
    /// For each slot, an index into `nodes`, or -1 when no node serves it.
    private var owners: [Int16]

    init() {
        nodes = []
        owners = Array(repeating: -1, count: RedisClusterSlot.count)
    }

    var isEmpty: Bool { nodes.isEmpty }

    func node(forSlot slot: Int) -> RedisEndpoint? {
        let owner = owners[slot]
        return owner < 0 ? nil : nodes[Int(owner)]
    }

    /// Records that `slot` moved to `node` (a MOVED reply), before the next full refresh.
    mutating func assign(slot: Int, to node: RedisEndpoint) {
        let index: Int
        if let existing = nodes.firstIndex(of: node) {
            index = existing
        } else {
            nodes.append(node)
            index = nodes.count - 1
        }
        owners[slot] = Int16(index)
    }

    /// Parses a `CLUSTER SLOTS` reply: `[[start, end, [host, port, id, …], replica…], …]`.
    /// A primary announced with an empty host (or `?`) is reached at `seed`'s host, as Redis documents.
    init(clusterSlots reply: RESPValue, seed: RedisEndpoint) throws(RedisClientError) {
        self.init()
        guard let ranges = reply.elements else { throw .unexpectedReply("CLUSTER SLOTS is not an array") }
        for range in ranges {
            guard let fields = range.elements, fields.count >= 3,
                let start = fields[0].int, let end = fields[1].int,
                let primary = fields[2].elements, primary.count >= 2,
                let announcedHost = primary[0].string, let port = primary[1].int,
                0 <= start, start <= end, end < RedisClusterSlot.count
            else { throw .unexpectedReply("CLUSTER SLOTS entry \(range)") }
            let host = announcedHost.isEmpty || announcedHost == "?" ? seed.host : announcedHost
            let node = RedisEndpoint(
                host: host, port: Int(port), username: seed.username, password: seed.password, database: 0)
            for slot in Int(start)...Int(end) { assign(slot: slot, to: node) }
        }
        guard !nodes.isEmpty else { throw .unexpectedReply("CLUSTER SLOTS lists no slots") }
    }
}

/// A `MOVED slot host:port` or `ASK slot host:port` error reply.
struct RedisClusterRedirection: Hashable {
    var isAsk: Bool
    var slot: Int
    var host: String
    var port: Int

    init?(errorMessage: String) {
        let parts = errorMessage.split(separator: " ")
        guard parts.count == 3, parts[0] == "MOVED" || parts[0] == "ASK", let slot = Int(parts[1]),
            (0..<RedisClusterSlot.count).contains(slot), let colon = parts[2].lastIndex(of: ":"),
            let port = Int(parts[2][parts[2].index(after: colon)...])
        else { return nil }
        isAsk = parts[0] == "ASK"
        self.slot = slot
        self.host = String(parts[2][..<colon])
        self.port = port
    }
}
