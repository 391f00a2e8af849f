/// Consistent hashing with bounded loads (Mirrokni, Thorup & Zadimoghaddam, 2018): no node may hold more than
/// `factor` × its fair share. A key goes to the first node of its probe sequence (the selection's candidate
/// order) whose load is under its cap, so keys stay where hashing puts them until a node saturates, and the peak
/// load can never exceed the cap. HAProxy's `hash-balance-factor` is the same idea.
public struct BoundedLoadSelector: Sendable {
    public let selection: any NodeSelection
    /// The cap factor c > 1: a node's cap is ⌈c × (total load + 1) × its weight share⌉.
    public let factor: Double
    private let weightShares: [Double]

    public init(selection: any NodeSelection, factor: Double = 1.25) throws(HashingError) {
        guard factor > 1, factor.isFinite else {
            throw .invalidParameter("bounded-load factor must be greater than 1 (e.g. 1.25), got \(factor)")
        }
        self.selection = selection
        self.factor = factor
        let totalWeight = Double(selection.nodes.reduce(0) { $0 + $1.weight })
        self.weightShares = selection.nodes.map { Double($0.weight) / totalWeight }
    }

    /// The most keys node `index` may hold once one more key is placed on top of `totalLoad`.
    public func capacity(ofNode index: Int, totalLoad: Int) -> Int {
        Int((factor * Double(totalLoad + 1) * share(index)).rounded(.up))
    }

    func share(_ index: Int) -> Double { weightShares[index] }

    /// The node for a new key: the first candidate whose current load (`load(i)`) is under its cap.
    /// - Parameters:
    ///   - totalLoad: the keys currently placed on all nodes (the sum of `load` over nodes).
    ///   - load: the current load of node `i` (connections, sessions, requests in flight…).
    public func pick(for keyHash: UInt64, totalLoad: Int, load: (Int) -> Int) -> Int {
        var chosen: Int?
        selection.forEachCandidate(for: keyHash) { index in
            if load(index) < capacity(ofNode: index, totalLoad: totalLoad) {
                chosen = index
                return false
            }
            return true
        }
        // With factor > 1 the caps add up to more than the load, so some node is always under its cap; the
        // owner is a defined answer should a caller pass loads that do not add up to totalLoad.
        return chosen ?? selection.ownerIndex(for: keyHash)
    }
}
