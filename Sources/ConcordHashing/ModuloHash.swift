/// `hash mod n`: the naive mapping. Balanced, but when n changes almost every key moves (n/(n+1) of them on
/// scale-out) — the remapping storm consistent hashing exists to avoid. Kept as the baseline.
public struct ModuloHash: NodeSelection {
    public let nodes: [Node]
    /// Node index per slot when weights differ; `nil` when every weight is 1 (slot = node index).
    private let slots: [Int32]?
    private let slotCount: UInt64

    public init(nodes: [Node]) throws(HashingError) {
        try NodeSetValidation.validate(nodes)
        self.nodes = nodes
        self.slots = NodeSetValidation.weightedSlots(nodes)
        self.slotCount = UInt64(slots?.count ?? nodes.count)
    }

    public func ownerIndex(for keyHash: UInt64) -> Int {
        node(atSlot: Int(keyHash % slotCount))
    }

    func node(atSlot slot: Int) -> Int {
        if let slots { Int(slots[slot]) } else { slot }
    }

    public func forEachCandidate(for keyHash: UInt64, _ body: (Int) -> Bool) {
        CircularWalk.forEachDistinct(
            tableSize: Int(slotCount), start: Int(keyHash % slotCount), nodeCount: nodes.count,
            nodeAt: node(atSlot:), body
        )
    }

    public var keySpaceShares: [Double]? { NodeSetValidation.weightShares(nodes) }

    public var memoryBytes: Int { nodes.count * MemoryLayout<Node>.stride + (slots?.count ?? 0) * 4 }
}
