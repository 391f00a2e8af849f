import ConcordSessions
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Ports for servers the tests and the lab start: below the ephemeral range (no outgoing connection takes them as
/// its source port, so no self-connect and no theft between the check and the bind), free, never handed out twice.
@Suite struct LoopbackPortTests {
    @Test func portsAreFreeBelowTheEphemeralRangeAndNeverHandedOutTwice() throws {
        let text = try String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8)
        let ephemeralLow = try #require(text.split(whereSeparator: \.isWhitespace).first.flatMap { Int($0) })
        let range = LoopbackPort.belowEphemeralRange
        #expect(range.upperBound == ephemeralLow && range.lowerBound > 1024, "\(range) for an ephemeral range from \(ephemeralLow)")
        var seen = Set<Int>()
        for _ in 0..<50 {
            let port = try LoopbackPort.free()
            #expect(range.contains(port), "\(port)")
            #expect(seen.insert(port).inserted, "\(port) handed out twice")
            // Free: a listener can take it.
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(fd) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = UInt16(port).bigEndian
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            #expect(bound == 0, "port \(port): errno \(errno)")
        }
    }
}
