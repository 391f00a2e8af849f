/// A ketama-style consistent-hash ring: each node owns `pointsPerWeight × weight` points on a 64-bit circle and a
/// key belongs to the first point at or after its hash. Adding a node takes ≈1/(n+1) of the keys, removing one
/// moves only its own keys. Balance improves with more points (about 1/√points relative spread per node); the
/// default 160 points per unit of weight is ketama's (and nginx's) choice.
public struct HashRing: NodeSelection {
    public static let defaultPointsPerWeight = 160

    public let nodes: [Node]
    /// Sorted point positions; `owners[i]` is the node index of `points[i]`. Two arrays, so the binary search
    /// touches only the positions.
    private let points: [UInt64]
    private let owners: [Int32]

    public init(nodes: [Node], pointsPerWeight: Int = HashRing.defaultPointsPerWeight) throws(HashingError) {
        try NodeSetValidation.validate(nodes)
        guard (1...10_000).contains(pointsPerWeight) else {
            throw .invalidParameter("ring points per weight must be 1...10000, got \(pointsPerWeight)")
        }
        self.nodes = nodes
        var entries: [(point: UInt64, owner: Int32, tie: UInt64)] = []
        entries.reserveCapacity(nodes.reduce(0) { $0 + $1.weight } * pointsPerWeight)
        for (index, node) in nodes.enumerated() {
            let idHash = KeyHash.hash(node.id)
            for replica in 0..<(node.weight * pointsPerWeight) {
                // Points derive from the node id only, so a node keeps its points whatever else joins or leaves.
                let point = KeyHash.mix(idHash ^ (UInt64(replica) &* 0x9E37_79B9_7F4A_7C15))
                entries.append((point, Int32(index), idHash))
            }
        }
        // Ties (two nodes on one point) are broken by the id hash, never by list order.
        entries.sort { $0.point != $1.point ? $0.point < $1.point : $0.tie < $1.tie }
        self.points = entries.map(\.point)
        self.owners = entries.map(\.owner)
    }

    /// Index of the first point at or after `keyHash`, wrapping to 0.
    func pointIndex(for keyHash: UInt64) -> Int {
        points.withUnsafeBufferPointer { points in
            var low = 0
            var high = points.count
            while low < high {
                let mid = (low + high) >> 1
                if points[mid] < keyHash { low = mid + 1 } else { high = mid }
            }
            return low == points.count ? 0 : low
        }
    }

    public func ownerIndex(for keyHash: UInt64) -> Int {
        Int(owners[pointIndex(for: keyHash)])
    }

    /// Walks the ring clockwise from the key's point: the successors are the next distinct nodes, which is what
    /// takes over a dead node's keys and what `ring` replication uses for backups.
    public func forEachCandidate(for keyHash: UInt64, _ body: (Int) -> Bool) {
        CircularWalk.forEachDistinct(
            tableSize: owners.count, start: pointIndex(for: keyHash), nodeCount: nodes.count,
            nodeAt: { Int(owners[$0]) }, body
        )
    }

    /// The share of the 64-bit key space each node owns (exact, no sampling): the ring's intrinsic balance.
    public var keySpaceShares: [Double]? {
        var shares = Array(repeating: 0.0, count: nodes.count)
        let scale = 1.0 / 18_446_744_073_709_551_616.0
        for i in points.indices {
            let start = i == 0 ? points[points.count - 1] : points[i - 1]
            shares[Int(owners[i])] += Double(points[i] &- start) * scale
        }
        if points.count == 1 { shares[Int(owners[0])] = 1 }
        return shares
    }

    public var memoryBytes: Int {
        nodes.count * MemoryLayout<Node>.stride + points.count * (MemoryLayout<UInt64>.stride + MemoryLayout<Int32>.stride)
    }
}
