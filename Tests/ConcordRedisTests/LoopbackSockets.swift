#if canImport(Glibc)
import Glibc
#endif

/// A loopback TCP socket held open by a test: bound but not listening (connects are refused at once), or
/// listening but never accepting (connects succeed through the kernel's backlog, but nothing ever answers).
/// Either way no other test can take the port meanwhile. ``close()`` it when done.
struct LoopbackSocket {
    let port: Int
    private let descriptor: Int32

    /// Bound, not listening: connecting is refused.
    static func refusing() throws -> LoopbackSocket { try LoopbackSocket(listening: false) }
    /// Listening, never accepting: connecting succeeds, commands get no reply.
    static func silent() throws -> LoopbackSocket { try LoopbackSocket(listening: true) }

    private init(listening: Bool) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw FixtureError("socket() failed: errno \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
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
            Glibc.close(fd)
            throw FixtureError("could not bind a loopback port: errno \(errno)")
        }
        descriptor = fd
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    func close() { Glibc.close(descriptor) }
}
