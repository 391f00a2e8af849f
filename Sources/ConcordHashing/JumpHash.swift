/// Jump consistent hash (Lamping & Veach, 2014): no table, O(ln n) time, perfectly balanced, and adding a node
/// at the end moves exactly 1/(n+1) of the keys. Its limit: nodes are numbered, so only the LAST node can leave
/// without remapping others — removing a node in the middle shifts every later one. Good for numbered shards,
/// less so for servers that crash at random. Weights are served by giving a node several buckets.
public struct JumpHash: NodeSelection {
    public let nodes: [Node]
    /// Node index per bucket when weights differ; `nil` when every weight is 1 (bucket = node index).
    private let buckets: [Int32]?
    private let bucketCount: Int64

    public init(nodes: [Node]) throws(HashingError) {
        try NodeSetValidation.validate(nodes)
        self.nodes = nodes
        self.buckets = NodeSetValidation.weightedSlots(nodes)
        self.bucketCount = Int64(buckets?.count ?? nodes.count)
    }

    /// The published algorithm, verbatim: a 64-bit LCG decides at which bucket count the key jumps next.
    @inlinable
    public static func bucket(for key: UInt64, buckets: Int64) -> Int64 {
        var key = key
        var b: Int64 = -1
        var j: Int64 = 0
        while j < buckets {
            b = j
            key = key &* 2_862_933_555_777_941_757 &+ 1
            j = Int64(Double(b + 1) * (Double(Int64(1) << 31) / Double((key >> 33) + 1)))
        }
        return b
    }

    public func ownerIndex(for keyHash: UInt64) -> Int {
        node(atBucket: Int(Self.bucket(for: keyHash, buckets: bucketCount)))
    }

    private func node(atBucket bucket: Int) -> Int {
        if let buckets { Int(buckets[bucket]) } else { bucket }
    }

    /// Successors come from re-hashing the key (each re-probe is itself a jump hash, so they are balanced too);
    /// after a bounded number of probes the remaining nodes follow in index order, so every node is offered.
    public func forEachCandidate(for keyHash: UInt64, _ body: (Int) -> Bool) {
        let owner = ownerIndex(for: keyHash)
        guard body(owner), nodes.count > 1 else { return }
        var visited = VisitedNodes(nodeCount: nodes.count)
        _ = visited.insert(owner)
        var probe: UInt64 = 1
        while visited.count < nodes.count, probe <= UInt64(4 * nodes.count + 16) {
            let index = node(atBucket: Int(Self.bucket(for: KeyHash.mix(keyHash &+ probe), buckets: bucketCount)))
            probe += 1
            if visited.insert(index), !body(index) { return }
        }
        for index in nodes.indices where visited.count < nodes.count {
            if visited.insert(index), !body(index) { return }
        }
    }

    public var keySpaceShares: [Double]? { NodeSetValidation.weightShares(nodes) }

    public var memoryBytes: Int { nodes.count * MemoryLayout<Node>.stride + (buckets?.count ?? 0) * 4 }
}
