#if canImport(Glibc)
import Glibc
#endif

/// A loopback TCP socket held open by a test: bound but not listening (connects are refused at once), or
/// listening but never accepting (connects succeed through the kernel's backlog, but nothing ever answers).
/// Either way no other test can take the port meanwhile — which also keeps a test server that was stopped from
/// having its port reused by a concurrently running test. ``close()`` it when done.
public struct LoopbackSocket: Sendable {
    public let port: Int
    private let descriptor: Int32

    /// Bound, not listening: connecting is refused. `port` 0 takes a free one. With `sharingPort`, the socket
    /// joins a port that a server bound with `SO_REUSEPORT` still listens on, so that the port stays taken — and
    /// refuses connections — from the moment that server closes (a test stopping a backend it still routes to).
    public static func refusing(port: Int = 0, sharingPort: Bool = false) throws -> LoopbackSocket {
        try LoopbackSocket(port: port, listening: false, sharingPort: sharingPort)
    }
    /// Listening, never accepting: connecting succeeds, commands get no reply.
    public static func silent() throws -> LoopbackSocket { try LoopbackSocket(port: 0, listening: true, sharingPort: false) }

    private init(port: Int, listening: Bool, sharingPort: Bool) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw LoopbackSocketError(message: "socket() failed: errno \(errno)") }
        if sharingPort {
            // SO_REUSEPORT only: it is what lets the socket join the listening server's port. With SO_REUSEADDR as
            // well, Linux lets any other SO_REUSEADDR socket bind and listen on a port held by a non-listening one —
            // a server another test started then got the "stopped" backend's port and accepted connections to it
            // (never answering) for as long as that test ran.
            var one: Int32 = 1
            _ = setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, socklen_t(MemoryLayout<Int32>.size))
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        let listened = listening ? listen(fd, 16) : 0
        guard bound == 0, named == 0, listened == 0 else {
            let failure = errno
            Glibc.close(fd)
            throw LoopbackSocketError(message: "could not bind loopback port \(port): errno \(failure)")
        }
        descriptor = fd
        self.port = Int(UInt16(bigEndian: address.sin_port))
    }

    public func close() { Glibc.close(descriptor) }
}

public struct LoopbackSocketError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}
