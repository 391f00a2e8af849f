#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Calendar time in milliseconds since 1970, for timestamps that must mean the same on every server and inside
/// sealed cookies (created, last access, expiry). Monotonic clocks cannot do that; tests inject their own.
public struct SessionWallClock: Sendable {
    private let read: @Sendable () -> Int64

    /// A clock reading `millisecondsSince1970`.
    public init(millisecondsSince1970: @escaping @Sendable () -> Int64) {
        self.read = millisecondsSince1970
    }

    /// Now, in milliseconds since 1970.
    public var now: Int64 { read() }

    /// The system's real-time clock.
    public static let system = SessionWallClock {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return Int64(time.tv_sec) * 1000 + Int64(time.tv_nsec) / 1_000_000
    }
}
