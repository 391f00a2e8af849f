/// A hybrid logical clock (Kulkarni et al.): wall-clock milliseconds in the high 48 bits and a logical counter in the
/// low 16, so timestamps follow real time when clocks agree and still respect causality when they do not: a node
/// that has seen a write always stamps its next write later.
///
/// A pure value; the owner keeps it behind a lock and passes the wall clock in.
struct HybridLogicalClock: Sendable {
    private(set) var last: UInt64 = 0

    static let logicalBits: UInt64 = 16

    static func physical(of timestamp: UInt64) -> UInt64 { timestamp >> logicalBits }

    /// A timestamp later than every one issued or observed so far.
    mutating func now(wallMilliseconds: UInt64) -> UInt64 {
        let candidate = wallMilliseconds << Self.logicalBits
        last = candidate > last ? candidate : last &+ 1
        return last
    }

    /// Moves the clock past a timestamp received from another node.
    mutating func observe(_ timestamp: UInt64) {
        if timestamp > last { last = timestamp }
    }
}
