#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Milliseconds since 1970. Session expiry is absolute wall-clock time so that every node agrees on it (nodes are
/// expected to run NTP; the hybrid logical clock, not the wall clock, orders writes).
public struct WallClock: Sendable {
    private let read: @Sendable () -> UInt64

    /// A clock that reads `read` (tests pass a settable one).
    public init(_ read: @escaping @Sendable () -> UInt64) {
        self.read = read
    }

    /// The system's real-time clock.
    public static let system = WallClock { UInt64(max(0, Date().timeIntervalSince1970 * 1000)) }

    public func milliseconds() -> UInt64 { read() }
}

extension Duration {
    /// Whole milliseconds, rounded down, never negative.
    var wholeMilliseconds: UInt64 {
        let (seconds, attoseconds) = components
        guard seconds >= 0 else { return 0 }
        return UInt64(seconds) * 1000 + UInt64(attoseconds / 1_000_000_000_000_000)
    }
}
