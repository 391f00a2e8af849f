/// Maglev hashing (Eisenbud et al., NSDI 2016): a prime-sized lookup table filled by letting every node claim
/// slots in turn along its own permutation. Lookup is one array read; each node holds within a slot or so of
/// table/n entries, so balance is near perfect. On a membership change most keys stay put, though a few keys of
/// other nodes move too (the paper's trade-off for balance). Weights give a node proportionally more turns.
public struct MaglevTable: NodeSelection {
    /// 65537 is prime and ≥ 65× the nodes of a 1000-node table, the paper's rule of thumb being M ≫ n.
    public static let defaultTableSize = 65537

    public let nodes: [Node]
    /// Node index per slot.
    private let table: [Int32]

    public init(nodes: [Node], tableSize: Int = MaglevTable.defaultTableSize) throws(HashingError) {
        try NodeSetValidation.validate(nodes)
        guard tableSize >= 2, Self.isPrime(tableSize) else { throw .tableSizeNotPrime(tableSize) }
        guard nodes.count < tableSize else { throw .tooManyNodesForTable(nodes: nodes.count, tableSize: tableSize) }
        self.nodes = nodes
        self.table = Self.populate(nodes: nodes, size: tableSize)
    }

    private static func populate(nodes: [Node], size: Int) -> [Int32] {
        // Turn order is by id hash, not list order, so the table depends only on the set of nodes.
        let order = nodes.indices.sorted {
            let (a, b) = (KeyHash.hash(nodes[$0].id), KeyHash.hash(nodes[$1].id))
            return a != b ? a < b : nodes[$0].id < nodes[$1].id
        }
        let m = UInt64(size)
        var position = order.map { KeyHash.hash(nodes[$0].id, seed: 0x6D61_676C_6576_3031) % m }  // offset
        let skip = order.map { KeyHash.hash(nodes[$0].id, seed: 0x6D61_676C_6576_3032) % (m - 1) + 1 }
        let weights = order.map { nodes[$0].weight }
        let maxWeight = weights.max() ?? 1
        var credit = Array(repeating: 0, count: order.count)
        var table = Array(repeating: Int32(-1), count: size)
        var filled = 0
        while filled < size {
            for turn in order.indices {
                // A node of weight w claims a slot on w of every maxWeight rounds.
                credit[turn] += weights[turn]
                guard credit[turn] >= maxWeight else { continue }
                credit[turn] -= maxWeight
                var slot = Int(position[turn])
                while table[slot] >= 0 {
                    position[turn] = (position[turn] + skip[turn]) % m
                    slot = Int(position[turn])
                }
                table[slot] = Int32(order[turn])
                position[turn] = (position[turn] + skip[turn]) % m
                filled += 1
                if filled == size { break }
            }
        }
        return table
    }

    static func isPrime(_ n: Int) -> Bool {
        guard n >= 2 else { return false }
        guard n >= 4 else { return true }
        if n % 2 == 0 { return false }
        var d = 3
        while d * d <= n {
            if n % d == 0 { return false }
            d += 2
        }
        return true
    }

    public func ownerIndex(for keyHash: UInt64) -> Int {
        table.withUnsafeBufferPointer { Int($0[Int(keyHash % UInt64($0.count))]) }
    }

    /// Successors are the next distinct nodes in the table after the key's slot; slots are spread uniformly, so a
    /// failed node's keys are shared out evenly among the others.
    public func forEachCandidate(for keyHash: UInt64, _ body: (Int) -> Bool) {
        // Nodes whose weight is tiny next to the table may own no slot; the walk offers them last.
        CircularWalk.forEachDistinct(
            tableSize: table.count, start: Int(keyHash % UInt64(table.count)), nodeCount: nodes.count,
            nodeAt: { Int(table[$0]) }, body
        )
    }

    /// Slots per node (the table's exact balance, without key sampling).
    public func slotCounts() -> [Int] {
        var counts = Array(repeating: 0, count: nodes.count)
        for entry in table { counts[Int(entry)] += 1 }
        return counts
    }

    public var keySpaceShares: [Double]? {
        slotCounts().map { Double($0) / Double(table.count) }
    }

    public var memoryBytes: Int { nodes.count * MemoryLayout<Node>.stride + table.count * MemoryLayout<Int32>.stride }
}
