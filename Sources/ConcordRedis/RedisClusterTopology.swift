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
            let node = seed.sibling(host: host, port: Int(port))
            for slot in Int(start)...Int(end) { assign(slot: slot, to: node) }
        }
        guard !nodes.isEmpty else { throw .unexpectedReply("CLUSTER SLOTS lists no slots") }
    }
}

extension RedisClusterTopology {
    /// Parses a `CLUSTER SHARDS` reply (Redis 7+): one entry per shard, each a map (RESP3) or a flat key/value
    /// array (RESP2) with `slots` (`[start, end, start, end, …]`) and `nodes` (maps with `id`, `port`, `ip`,
    /// `endpoint`, `role`, `health`, …). Each shard's slots go to its primary (`role` `master`) unless that primary
    /// is marked `failed`; a shard without one stays unassigned (its commands go to any node and follow MOVED).
    /// The node is reached at its `endpoint` (the cluster's preferred address), else its `ip`; an empty or `?`
    /// address means `seed`'s host, as for `CLUSTER SLOTS`. Over TLS (`seed.tls`) the node's `tls-port` is used.
    init(clusterShards reply: RESPValue, seed: RedisEndpoint) throws(RedisClientError) {
        self.init()
        guard let shards = reply.elements else { throw .unexpectedReply("CLUSTER SHARDS is not an array") }
        for shard in shards {
            guard let fields = Self.fields(of: shard), let ranges = fields["slots"]?.elements, ranges.count % 2 == 0,
                let members = fields["nodes"]?.elements
            else { throw .unexpectedReply("CLUSTER SHARDS entry \(shard)") }
            guard !ranges.isEmpty else { continue }  // a shard without slots (a node just added) serves nothing
            let primary = members.lazy.compactMap(Self.fields(of:)).first {
                $0["role"]?.string == "master" && $0["health"]?.string != "failed"
            }
            guard let primary else { continue }
            // A TLS cluster lists `tls-port` (and `port` only when it also listens in plain TCP).
            let portField = seed.tls == nil ? primary["port"] : primary["tls-port"] ?? primary["port"]
            guard let port = portField?.int, (1...65535).contains(port) else {
                throw .unexpectedReply("CLUSTER SHARDS primary without a port: \(primary)")
            }
            let announced = [primary["endpoint"]?.string, primary["ip"]?.string].lazy
                .compactMap { $0 }.first { !$0.isEmpty && $0 != "?" }
            let node = seed.sibling(host: announced ?? seed.host, port: Int(port))
            for index in stride(from: 0, to: ranges.count, by: 2) {
                guard let start = ranges[index].int, let end = ranges[index + 1].int,
                    0 <= start, start <= end, end < RedisClusterSlot.count
                else { throw .unexpectedReply("CLUSTER SHARDS slot range \(ranges[index]) \(ranges[index + 1])") }
                for slot in Int(start)...Int(end) { assign(slot: slot, to: node) }
            }
        }
        guard !nodes.isEmpty else { throw .unexpectedReply("CLUSTER SHARDS lists no served slots") }
    }

    /// The fields of a RESP3 map or of a RESP2 flat `[key, value, key, value, …]` array, by key text.
    private static func fields(of value: RESPValue) -> [String: RESPValue]? {
        var fields: [String: RESPValue] = [:]
        switch value {
        case .map(let entries):
            for entry in entries {
                guard let key = entry.key.string else { return nil }
                fields[key] = entry.value
            }
        case .array(let flat) where flat.count % 2 == 0:
            for index in stride(from: 0, to: flat.count, by: 2) {
                guard let key = flat[index].string else { return nil }
                fields[key] = flat[index + 1]
            }
        default:
            return nil
        }
        return fields
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
