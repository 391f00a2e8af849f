import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// How many bytes a connection's peer has acknowledged (`tcpi_bytes_acked` of Linux's `TCP_INFO`, since 4.1): what
/// ``ResponseProgress`` counts as a client taking its response. The proxy's own queue is not enough — the kernel's
/// send buffer grows to megabytes (`tcp_wmem`), and the socket turns writable again only after a third of it has
/// drained, so a client reading steadily at 1 MB/s took nothing from the proxy's queue for over a second at a time
/// (a probe: cut off with `responseTimeout: 1` on both engines). A client that stops reading stops acknowledging
/// once its own receive buffer is full: a zero-window probe acknowledges no new byte.
enum TCPBytesAcked {
    /// `struct tcp_info` up to `tcpi_bytes_acked` (offset 120) and the field after it; Glibc's declaration stops
    /// before both.
    struct Info: Sendable {
        var words: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
                    UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        /// `tcpi_bytes_acked`, the 16th 8-byte word.
        var bytesAcked: UInt64 { words.15 }
    }

    static let minimumLength = 128

    /// The count for socket `fd`, or `nil` when the kernel does not report it.
    static func of(fd: Int32) -> UInt64? {
        var info = Info()
        var length = socklen_t(MemoryLayout<Info>.size)
        guard getsockopt(fd, Int32(IPPROTO_TCP), TCP_INFO, &info, &length) == 0, Int(length) >= minimumLength else { return nil }
        return info.bytesAcked
    }

    /// The count for a SwiftNIO socket channel, asked on its event loop (the answer comes at once there, as
    /// ``BackendHTTPHandler/backendHasClosed`` relies on too); `nil` for other channels.
    static func of(channel: any Channel) -> UInt64? {
        #if os(Linux)
        guard let provider = channel as? any SocketOptionProvider else { return nil }
        var acked: UInt64?
        let future: EventLoopFuture<Info> = provider.unsafeGetSocketOption(level: SocketOptionLevel(IPPROTO_TCP), name: TCP_INFO)
        future.assumeIsolated().whenSuccess { acked = $0.bytesAcked }
        return acked
        #else
        return nil
        #endif
    }
}
