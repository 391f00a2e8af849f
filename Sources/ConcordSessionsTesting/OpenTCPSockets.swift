#if canImport(Glibc)
import Glibc
#endif

/// This process's open TCP sockets, found by their ports, with the options a test checks on them: the socket a
/// client, proxy or store connection uses is not reachable through its API, but it is one of the process's file
/// descriptors. Used to check that connections get `TCP_NODELAY` and not `SO_DEBUG` (the same option number at the
/// socket level: asking for the one with the wrong level sets the other, which only root may do, so every
/// connection of a process run by another user failed — and tests, run as root, passed).
public enum OpenTCPSockets {
    public struct Socket: Sendable, Equatable, CustomStringConvertible {
        public let descriptor: Int32
        public let localPort: Int
        public let peerPort: Int
        public let noDelay: Bool
        public let debug: Bool
        public var description: String {
            "fd \(descriptor) \(localPort)→\(peerPort) TCP_NODELAY=\(noDelay ? 1 : 0) SO_DEBUG=\(debug ? 1 : 0)"
        }
    }

    /// The connected TCP sockets whose local and peer ports match the ones given (nil: any).
    public static func matching(localPort: Int? = nil, peerPort: Int? = nil) -> [Socket] {
        guard let directory = opendir("/proc/self/fd") else { return [] }
        defer { closedir(directory) }
        var found: [Socket] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard let fd = Int32(name), let socket = inspect(fd) else { continue }
            if let localPort, socket.localPort != localPort { continue }
            if let peerPort, socket.peerPort != peerPort { continue }
            found.append(socket)
        }
        return found
    }

    private static func inspect(_ fd: Int32) -> Socket? {
        guard integerOption(fd, SOL_SOCKET, SO_TYPE) == Int32(SOCK_STREAM.rawValue),
              let local = port(fd, getsockname), let peer = port(fd, getpeername),
              let noDelay = integerOption(fd, Int32(IPPROTO_TCP), TCP_NODELAY),
              let debug = integerOption(fd, SOL_SOCKET, SO_DEBUG)
        else { return nil }
        return Socket(descriptor: fd, localPort: local, peerPort: peer, noDelay: noDelay != 0, debug: debug != 0)
    }

    private static func integerOption(_ fd: Int32, _ level: Int32, _ name: Int32) -> Int32? {
        var value: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        return getsockopt(fd, level, name, &value, &length) == 0 ? value : nil
    }

    /// The port of `getsockname` / `getpeername` for an IPv4 or IPv6 socket.
    private static func port(_ fd: Int32, _ call: (Int32, UnsafeMutablePointer<sockaddr>, UnsafeMutablePointer<socklen_t>) -> Int32) -> Int? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let result = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { call(fd, $0, &length) }
        }
        guard result == 0 else { return nil }
        switch Int32(storage.ss_family) {
        case AF_INET:
            return withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin_port)) }
            }
        case AF_INET6:
            return withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin6_port)) }
            }
        default:
            return nil
        }
    }
}
