import ConcordHashing

/// The measurements behind `concord bench hashing`, kept apart from the command-line parsing.
struct HashingBenchmark {
    /// One row: field names are read by other tools, keep them.
    struct Result: Codable {
        var algorithm: String
        var nodes: Int
        var lookupNanos: Double
        var peakToMean: Double
        /// Peak/mean of the exact key-space shares (no sampling noise); `nil` where the structure has none.
        var exactPeakToMean: Double?
        var movedOnAdd: Double
        var movedOnRemove: Double
        var idealMovedOnAdd: Double
        var idealMovedOnRemove: Double
        var buildMillis: Double
        var memoryBytes: Int
        var keys: Int
    }

    let keyHashes: [UInt64]
    let boundedFactor: Double

    static func nodes(_ n: Int) -> [Node] { (0..<n).map { Node(id: "node-\($0)") } }

    /// n nodes, then n+1 (one appended), then n−1 (the middle one removed, as a crash would).
    static func memberships(_ n: Int) -> (base: [Node], added: [Node], removed: [Node]) {
        let base = nodes(n)
        var removed = base
        removed.remove(at: n / 2)
        return (base, nodes(n + 1), removed)
    }

    func measure(algorithm: String, nodes n: Int) throws -> Result {
        switch algorithm {
        case "modulo": try measure(algorithm, n, ModuloHash.init(nodes:))
        case "ring": try measure(algorithm, n) { nodes throws(HashingError) in try HashRing(nodes: nodes) }
        case "jump": try measure(algorithm, n, JumpHash.init(nodes:))
        case "maglev": try measure(algorithm, n) { nodes throws(HashingError) in try MaglevTable(nodes: nodes) }
        case "rendezvous": try measure(algorithm, n, RendezvousHash.init(nodes:))
        default: try measureBounded(n)
        }
    }

    /// Generic over the concrete type, so lookups are timed without existential dispatch.
    private func measure<S: NodeSelection>(_ name: String, _ n: Int, _ make: ([Node]) throws(HashingError) -> S) throws -> Result {
        let sets = Self.memberships(n)
        var built: S?
        let buildTime = try Self.medianMillis(runs: 3) { built = try make(sets.base) }
        let selection = built!
        let owners = keyHashes.map { selection.ownerIndex(for: $0) }
        let added = try make(sets.added)
        let removed = try make(sets.removed)
        let movedOnAdd = Self.moved(owners, selection.nodes, keyHashes.map { added.ownerIndex(for: $0) }, added.nodes)
        let movedOnRemove = Self.moved(owners, selection.nodes, keyHashes.map { removed.ownerIndex(for: $0) }, removed.nodes)
        return Result(
            algorithm: name, nodes: n, lookupNanos: timeLookups { selection.ownerIndex(for: $0) },
            peakToMean: Self.peakToMean(owners, nodeCount: n), exactPeakToMean: Self.peakToMean(selection.keySpaceShares),
            movedOnAdd: movedOnAdd, movedOnRemove: movedOnRemove,
            idealMovedOnAdd: 1 / Double(n + 1), idealMovedOnRemove: 1 / Double(n),
            buildMillis: buildTime, memoryBytes: selection.memoryBytes, keys: keyHashes.count
        )
    }

    /// Bounded loads: keys arrive one by one and each goes to the first node under its cap, as a balancer places
    /// sessions. Lookup time is the cost of one such pick.
    private func measureBounded(_ n: Int) throws -> Result {
        let sets = Self.memberships(n)
        var built: BoundedLoadSelector?
        let buildTime = try Self.medianMillis(runs: 3) {
            built = try BoundedLoadSelector(selection: try HashRing(nodes: sets.base), factor: boundedFactor)
        }
        let bounded = built!
        let owners = place(bounded)
        let added = place(try BoundedLoadSelector(selection: try HashRing(nodes: sets.added), factor: boundedFactor))
        let removed = place(try BoundedLoadSelector(selection: try HashRing(nodes: sets.removed), factor: boundedFactor))
        // Timed picks against a settled load vector (the state a running balancer is in).
        var loads = Array(repeating: 0, count: n)
        for owner in owners { loads[owner] += 1 }
        let total = keyHashes.count
        let nanos = loads.withUnsafeBufferPointer { loads in
            timeLookups { bounded.pick(for: $0, totalLoad: total) { loads[$0] } }
        }
        return Result(
            algorithm: "bounded", nodes: n, lookupNanos: nanos,
            peakToMean: Self.peakToMean(owners, nodeCount: n), exactPeakToMean: nil,
            movedOnAdd: Self.moved(owners, sets.base, added, sets.added),
            movedOnRemove: Self.moved(owners, sets.base, removed, sets.removed),
            idealMovedOnAdd: 1 / Double(n + 1), idealMovedOnRemove: 1 / Double(n),
            buildMillis: buildTime, memoryBytes: bounded.selection.memoryBytes + n * 8, keys: keyHashes.count
        )
    }

    private func place(_ bounded: BoundedLoadSelector) -> [Int] {
        var loads = Array(repeating: 0, count: bounded.selection.nodes.count)
        var owners: [Int] = []
        owners.reserveCapacity(keyHashes.count)
        for (placed, key) in keyHashes.enumerated() {
            let index = bounded.pick(for: key, totalLoad: placed) { loads[$0] }
            loads[index] += 1
            owners.append(index)
        }
        return owners
    }

    /// Nanoseconds of this thread's CPU time per lookup: one warm-up pass, then passes until 200 ms or 4 passes,
    /// over a 64 Ki-key window (so the keys stay in cache and the structure's own memory behaviour shows).
    /// CPU time rather than wall time, so other work on the machine does not inflate the figure.
    private func timeLookups(_ lookup: (UInt64) -> Int) -> Double {
        let window = Array(keyHashes.prefix(65_536))
        var sink = 0
        for key in window.prefix(4_096) { sink &+= lookup(key) }
        var lookups = 0
        let start = ThreadCPUClock.nanoseconds()
        var elapsed: UInt64 = 0
        repeat {
            for key in window { sink &+= lookup(key) }
            lookups += window.count
            elapsed = ThreadCPUClock.nanoseconds() - start
        } while elapsed < 200_000_000 && lookups < 4 * window.count
        precondition(sink != Int.min)  // keeps the optimiser from dropping the loop
        return Double(elapsed) / Double(lookups)
    }

    private static func medianMillis(runs: Int, _ body: () throws -> Void) throws -> Double {
        var times: [Double] = []
        for _ in 0..<runs {
            let start = ThreadCPUClock.nanoseconds()
            try body()
            times.append(Double(ThreadCPUClock.nanoseconds() - start) / 1e6)
        }
        return times.sorted()[runs / 2]
    }

    private static func peakToMean(_ owners: [Int], nodeCount: Int) -> Double {
        var loads = Array(repeating: 0, count: nodeCount)
        for owner in owners { loads[owner] += 1 }
        return Double(loads.max() ?? 0) / (Double(owners.count) / Double(nodeCount))
    }

    private static func peakToMean(_ shares: [Double]?) -> Double? {
        guard let shares, let peak = shares.max() else { return nil }
        return peak * Double(shares.count) / shares.reduce(0, +)
    }

    /// Fraction of keys whose owner (by node id) differs between two memberships.
    private static func moved(_ before: [Int], _ beforeNodes: [Node], _ after: [Int], _ afterNodes: [Node]) -> Double {
        var moved = 0
        for i in before.indices where beforeNodes[before[i]].id != afterNodes[after[i]].id { moved += 1 }
        return Double(moved) / Double(before.count)
    }
}
