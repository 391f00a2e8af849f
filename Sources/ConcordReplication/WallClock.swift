#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Milliseconds since 1970. Session expiry is absolute wall-clock time so that every node agrees on it (nodes are
/// expected to run NTP; the hybrid logical clock, not the wall clock, orders writes). Tests inject their own.
public struct WallClock: Sendable {
    private let read: @Sendable () -> Int64

    /// A clock reading `millisecondsSince1970`.
    public init(millisecondsSince1970: @escaping @Sendable () -> Int64) {
        self.read = millisecondsSince1970
    }

    /// Now, in milliseconds since 1970.
    public var now: Int64 { read() }

    /// The system's real-time clock.
    public static let system = WallClock {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return Int64(time.tv_sec) * 1000 + Int64(time.tv_nsec) / 1_000_000
    }
}
