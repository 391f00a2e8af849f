@testable import ConcordHashing

/// Shared fixtures: deterministic node sets and key samples.
enum Fixture {
    static func nodes(_ count: Int, prefix: String = "node") -> [Node] {
        (0..<count).map { Node(id: "\(prefix)-\($0)") }
    }

    /// Hashes of `count` user-like keys; the same in every run.
    static func keyHashes(_ count: Int, salt: String = "user") -> [UInt64] {
        (0..<count).map { KeyHash.hash("\(salt)-\($0)") }
    }

    static func owners(_ selection: some NodeSelection, _ keys: [UInt64]) -> [String] {
        keys.map { selection.nodes[selection.ownerIndex(for: $0)].id }
    }

    static func loads(_ selection: some NodeSelection, _ keys: [UInt64]) -> [Int] {
        var loads = Array(repeating: 0, count: selection.nodes.count)
        for key in keys { loads[selection.ownerIndex(for: key)] += 1 }
        return loads
    }

    static func peakToMean(_ loads: [Int]) -> Double {
        let mean = Double(loads.reduce(0, +)) / Double(loads.count)
        return Double(loads.max() ?? 0) / mean
    }

    static func movedFraction(_ before: [String], _ after: [String]) -> Double {
        Double(zip(before, after).filter { $0 != $1 }.count) / Double(before.count)
    }
}

/// A small seeded generator (SplitMix64) for property-style tests that must be reproducible.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return KeyHash.mix(state &- 0x9E37_79B9_7F4A_7C15)
    }
}
