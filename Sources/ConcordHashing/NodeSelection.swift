/// Maps a key (its 64-bit ``KeyHash``) to one of a fixed set of nodes, and to an ordered list of distinct fallbacks.
///
/// A selection is immutable and built once per membership (Pingora-style): when nodes join or leave, build a new
/// one and publish it; never mutate. Building is deterministic: the same nodes give the same mapping in every
/// process. Indices refer to positions in ``nodes``.
public protocol NodeSelection: Sendable {
    /// The nodes, in the order indices refer to.
    var nodes: [Node] { get }

    /// The index of the node that owns `keyHash`.
    func ownerIndex(for keyHash: UInt64) -> Int

    /// Calls `body` with distinct node indices in preference order — the owner first, then the node that takes
    /// over if it fails, and so on — until `body` returns `false` or every node has been offered once.
    func forEachCandidate(for keyHash: UInt64, _ body: (Int) -> Bool)

    /// Approximate bytes held by the structure (for the benchmark's memory column).
    var memoryBytes: Int { get }

    /// The exact share of the key space each node owns, where the structure defines it (ring arcs, table slots,
    /// buckets); `nil` where only sampling can tell (rendezvous). Free of the noise that sampling keys adds.
    var keySpaceShares: [Double]? { get }
}

extension NodeSelection {
    public var keySpaceShares: [Double]? { nil }

    /// The node that owns `key`.
    public func owner(for key: some StringProtocol) -> Node {
        nodes[ownerIndex(for: KeyHash.hash(key))]
    }

    /// The owner and its successors: up to `count` distinct node indices in preference order. Replica placement
    /// (owner + k backups) asks for `k + 1`; failover walks the list until it finds a ready node.
    public func preferenceList(for keyHash: UInt64, count: Int) -> [Int] {
        guard count > 0 else { return [] }
        var result: [Int] = []
        result.reserveCapacity(min(count, nodes.count))
        forEachCandidate(for: keyHash) { index in
            result.append(index)
            return result.count < count
        }
        return result
    }

    /// ``preferenceList(for:count:)`` for a key given as text, as nodes.
    public func preferenceList(for key: some StringProtocol, count: Int) -> [Node] {
        preferenceList(for: KeyHash.hash(key), count: count).map { nodes[$0] }
    }

    /// The first candidate for which `isReady` holds (e.g. healthy and not draining), or `nil` if none is.
    public func firstReady(for keyHash: UInt64, where isReady: (Int) -> Bool) -> Int? {
        var found: Int?
        forEachCandidate(for: keyHash) { index in
            if isReady(index) {
                found = index
                return false
            }
            return true
        }
        return found
    }
}

/// Checks the node list every builder receives: not empty, unique ids, weights in range.
enum NodeSetValidation {
    static func validate(_ nodes: [Node]) throws(HashingError) {
        guard !nodes.isEmpty else { throw .emptyNodeSet }
        var seen = Set<String>()
        seen.reserveCapacity(nodes.count)
        for node in nodes {
            guard (1...Node.maximumWeight).contains(node.weight) else {
                throw .invalidWeight(node: node.id, weight: node.weight)
            }
            guard seen.insert(node.id).inserted else { throw .duplicateNode(node.id) }
        }
    }

    /// Slot table where node `i` appears `weight` times, in node order (modulo and jump use it for weights).
    static func weightedSlots(_ nodes: [Node]) -> [Int32]? {
        guard nodes.contains(where: { $0.weight != 1 }) else { return nil }
        var slots: [Int32] = []
        slots.reserveCapacity(nodes.reduce(0) { $0 + $1.weight })
        for (index, node) in nodes.enumerated() {
            slots.append(contentsOf: repeatElement(Int32(index), count: node.weight))
        }
        return slots
    }

    /// Each node's share when node `i` owns `weight` of the equal-sized slots.
    static func weightShares(_ nodes: [Node]) -> [Double] {
        let total = Double(nodes.reduce(0) { $0 + $1.weight })
        return nodes.map { Double($0.weight) / total }
    }
}

/// The candidate walk shared by the table-like selections (modulo slots, ring points, Maglev entries): the node
/// at `start`, then the distinct nodes met going round the circular table, then any node the table never names.
/// The visited set is allocated only once the walk goes past the owner, keeping the common lookup allocation-free.
enum CircularWalk {
    static func forEachDistinct(
        tableSize: Int, start: Int, nodeCount: Int, nodeAt: (Int) -> Int, _ body: (Int) -> Bool
    ) {
        let owner = nodeAt(start)
        guard body(owner), nodeCount > 1 else { return }
        var visited = VisitedNodes(nodeCount: nodeCount)
        _ = visited.insert(owner)
        var position = start
        for _ in 1..<tableSize where visited.count < nodeCount {
            position = position + 1 == tableSize ? 0 : position + 1
            let index = nodeAt(position)
            if visited.insert(index), !body(index) { return }
        }
        for index in 0..<nodeCount where visited.count < nodeCount {
            if visited.insert(index), !body(index) { return }
        }
    }
}

/// The set of node indices a candidate walk has already offered. Allocated only once a walk goes past the owner,
/// which keeps the common lookup (owner accepted) free of allocation.
struct VisitedNodes {
    private var words: [UInt64]
    private(set) var count = 0

    init(nodeCount: Int) {
        words = Array(repeating: 0, count: (nodeCount + 63) / 64)
    }

    /// Marks `index`; returns `false` if it was already marked.
    mutating func insert(_ index: Int) -> Bool {
        let bit: UInt64 = 1 << UInt64(index & 63)
        if words[index >> 6] & bit != 0 { return false }
        words[index >> 6] |= bit
        count += 1
        return true
    }

    func contains(_ index: Int) -> Bool {
        words[index >> 6] & (1 << UInt64(index & 63)) != 0
    }
}
