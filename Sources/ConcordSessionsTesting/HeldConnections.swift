import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Plain loopback TCP connections a test holds open — to run a server out of descriptors — and the first answer
/// each gets to a GET. No NIO: what is tested is the server's side.
public enum HeldConnections {
    public struct ConnectFailed: Error { public let errno: Int32 }

    /// `count` connections to 127.0.0.1:`port` (loopback connects complete in the kernel's backlog, accepted or
    /// not). Close them (`close(fd)`) when done; on a failure the ones made so far are closed.
    public static func open(_ count: Int, port: Int) throws(ConnectFailed) -> [Int32] {
        var sockets: [Int32] = []
        for _ in 0..<count {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { break }
            sockets.append(fd)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            address.sin_port = UInt16(port).bigEndian
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard connected == 0 else {
                let failure = errno
                for fd in sockets { close(fd) }
                throw ConnectFailed(errno: failure)
            }
        }
        return sockets
    }

    /// Sends a keep-alive GET on each connection and returns the status codes that arrive while all of them stay
    /// open (a client still in the server's backlog gets none; -1 for a close): until each has one, 5 s passed, or
    /// none came for 1 s.
    public static func statusCodes(sendingAGetOn sockets: [Int32]) async -> [Int] {
        let request = Array("GET / HTTP/1.1\r\nHost: t\r\n\r\n".utf8)
        for fd in sockets { _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } }
        var statuses: [Int] = []
        var waiting = sockets.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        let deadline = ContinuousClock.now + .seconds(5)
        var lastAnswer = ContinuousClock.now
        while !waiting.isEmpty && ContinuousClock.now < deadline && ContinuousClock.now - lastAnswer < .seconds(1) {
            // Never block in poll: this runs on the cooperative pool, one thread per core, which other tests share.
            guard poll(&waiting, nfds_t(waiting.count), 0) > 0 else {
                try? await Task.sleep(for: .milliseconds(10))
                continue
            }
            lastAnswer = ContinuousClock.now
            for entry in waiting where entry.revents != 0 {
                var buffer = [UInt8](repeating: 0, count: 512)
                let read = recv(entry.fd, &buffer, buffer.count, 0)
                let line = read > 0 ? String(decoding: buffer[..<read], as: UTF8.self) : ""
                statuses.append(line.hasPrefix("HTTP/1.1 ") ? Int(line.dropFirst(9).prefix(3)) ?? -1 : -1)
            }
            waiting = waiting.filter { $0.revents == 0 }
        }
        return statuses.sorted()
    }
}
