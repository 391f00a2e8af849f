import Foundation

/// Rendezvous (highest random weight) hashing, Thaler & Ravishankar 1996: every node scores the key and the
/// highest score wins. No structure to build, minimal disruption (a removed node's keys go to their second
/// choice; an added node takes only the keys it now wins), and the candidate order is the score order. The cost
/// is O(n) per lookup. Weighted with the logarithmic method (score = w / −ln u), which is exact for any weights.
public struct RendezvousHash: NodeSelection {
    public let nodes: [Node]
    private let nodeHashes: [UInt64]
    private let weights: [Double]
    private let uniformWeights: Bool

    public init(nodes: [Node]) throws(HashingError) {
        try NodeSetValidation.validate(nodes)
        self.nodes = nodes
        self.nodeHashes = nodes.map { KeyHash.hash($0.id) }
        self.weights = nodes.map { Double($0.weight) }
        self.uniformWeights = Set(nodes.map(\.weight)).count == 1
    }

    /// Node `index`'s pseudo-random draw for the key.
    @inline(__always)
    private func draw(_ keyHash: UInt64, _ index: Int) -> UInt64 {
        KeyHash.mix(keyHash ^ nodeHashes[index])
    }

    @inline(__always)
    private func weightedScore(_ draw: UInt64, _ index: Int) -> Double {
        // u in (0, 1): 53 random bits, centred so it is never 0 or 1.
        let u = (Double(draw >> 11) + 0.5) * 0x1p-53
        return weights[index] / -log(u)
    }

    public func ownerIndex(for keyHash: UInt64) -> Int {
        var best = 0
        if uniformWeights {
            var bestDraw = draw(keyHash, 0)
            for index in 1..<nodes.count {
                let d = draw(keyHash, index)
                if d > bestDraw { (best, bestDraw) = (index, d) }
            }
        } else {
            var bestScore = weightedScore(draw(keyHash, 0), 0)
            for index in 1..<nodes.count {
                let s = weightedScore(draw(keyHash, index), index)
                if s > bestScore { (best, bestScore) = (index, s) }
            }
        }
        return best
    }

    public func forEachCandidate(for keyHash: UInt64, _ body: (Int) -> Bool) {
        let owner = ownerIndex(for: keyHash)
        guard body(owner), nodes.count > 1 else { return }
        let ranked: [Int]
        if uniformWeights {
            ranked = nodes.indices.sorted { draw(keyHash, $0) > draw(keyHash, $1) }
        } else {
            let scores = nodes.indices.map { weightedScore(draw(keyHash, $0), $0) }
            ranked = nodes.indices.sorted { scores[$0] > scores[$1] }
        }
        for index in ranked where index != owner {
            if !body(index) { return }
        }
    }

    public var memoryBytes: Int { nodes.count * (MemoryLayout<Node>.stride + 8 + 8) }
}
