import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A plain blocking TCP client for what ``RawClient`` cannot do: a small receive buffer and a client that reads
/// nothing for a while, or a connection kept open across other requests. Every call runs on its own thread (never a
/// Swift concurrency thread) and is bounded by `SO_RCVTIMEO` / `SO_SNDTIMEO`.
final class BlockingSocket: @unchecked Sendable {
    // @unchecked: `fd` is set once; each test uses a socket from one task at a time.
    private let fd: Int32

    /// Connects to 127.0.0.1:`port`; `receiveBuffer` sets `SO_RCVBUF` before the connect (so the window stays small).
    init(port: Int, receiveBuffer: Int32? = nil, timeout: Duration = .seconds(10)) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EMFILE) }
        if var size = receiveBuffer {
            _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        var limit = timeval(tv_sec: Int(timeout.components.seconds), tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            let code = errno
            Glibc.close(fd)
            throw POSIXError(POSIXErrorCode(rawValue: code) ?? .ECONNREFUSED)
        }
    }

    deinit { Glibc.close(fd) }

    func send(_ text: String) async {
        await Self.onThread { [fd] in
            var bytes = Array(text.utf8)
            var sent = 0
            while sent < bytes.count {
                let count = bytes.withUnsafeMutableBytes { Glibc.send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
                if count <= 0 { return }
                sent += count
            }
        }
    }

    /// Reads until `done` says the bytes so far are enough, the peer closes, or a read times out. `closed`: the peer
    /// closed (EOF or reset). A slow reader reads at most `chunkSize` bytes at a time and waits `pause` after each.
    func read(chunkSize: Int = 65_536, pause: Duration = .zero, until done: @escaping @Sendable ([UInt8]) -> Bool) async
        -> (bytes: [UInt8], closed: Bool)
    {
        await Self.onThread { [fd] in
            var bytes: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: chunkSize)
            while !done(bytes) {
                let count = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
                if count > 0 {
                    bytes += chunk[0..<count]
                    if pause > .zero { usleep(UInt32(pause.components.attoseconds / 1_000_000_000_000)) }
                    continue
                }
                if count < 0 && errno == EINTR { continue }
                // 0: EOF; -1 with EAGAIN: the receive timeout; otherwise a reset.
                return (bytes, count == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
            }
            return (bytes, false)
        }
    }

    private static func onThread<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            let thread = Thread { continuation.resume(returning: work()) }
            thread.start()
        }
    }
}
