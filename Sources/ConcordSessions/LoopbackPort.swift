import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Free TCP ports on 127.0.0.1 for servers a process starts itself (Redis, PostgreSQL, app nodes): chosen *below*
/// the kernel's ephemeral range (`net.ipv4.ip_local_port_range`), where outgoing connections never take their source
/// ports. A port from the ephemeral range (bind port 0, as before 2026-12-02) could be taken between the check and
/// the server's bind by any connection's source port, and a client retrying a stopped server's port could connect
/// to itself (TCP simultaneous open: source port = destination port) and read its own commands back. Lives here
/// because every module that starts such servers depends on this one.
public enum LoopbackPort {
    /// A port that was free a moment ago. Ports handed out by this process are not handed out twice.
    public static func free() throws(LoopbackPortError) -> Int {
        let candidates = belowEphemeralRange
        if !candidates.isEmpty {
            for _ in 0..<256 {
                // Free now (no `SO_REUSEADDR`: a port in TIME_WAIT counts as taken) and not handed out before.
                let port = Int.random(in: candidates)
                if (try? bind(port)) != nil, claimed.withLock({ $0.insert(port).inserted }) { return port }
            }
        }
        // A tiny or odd ephemeral range: let the kernel choose, as before.
        for _ in 0..<64 {
            let port = try bind(0)
            if claimed.withLock({ $0.insert(port).inserted }) { return port }
        }
        throw LoopbackPortError(message: "no free loopback port found")
    }

    private static let claimed = Mutex<Set<Int>>([])

    /// Up to 12,000 ports just below the ephemeral range (32768–60999 by default: 20768..<32768); empty when the
    /// range starts too low to leave any above 1024.
    public static let belowEphemeralRange: Range<Int> = {
        let text = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8)) ?? ""
        let low = text.split(whereSeparator: \.isWhitespace).first.flatMap { Int($0) } ?? 32768
        let start = max(1025, low - 12_000)
        return start < low ? start..<low : low..<low
    }()

    /// Binds a socket to 127.0.0.1:`port`, reads back the port and closes it.
    private static func bind(_ port: Int) throws(LoopbackPortError) -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw LoopbackPortError(message: "socket(): errno \(errno)") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, length) }
        }
        guard bound == 0 else { throw LoopbackPortError(message: "bind(127.0.0.1:\(port)): errno \(errno)") }
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else { throw LoopbackPortError(message: "getsockname(): errno \(errno)") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

public struct LoopbackPortError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}
