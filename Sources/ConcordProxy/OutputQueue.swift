#if canImport(Glibc)
import Glibc
#endif
import NIOCore

/// Bytes waiting to be written to one socket of the direct HTTP engine (``HTTPForwardingLoop``), as the buffers
/// they came in (slices of what was read, made heads): nothing is copied, and everything queued in one turn goes out
/// in one `writev`. While it holds bytes the other side of the exchange reads nothing more (the backpressure).
struct OutputQueue {
    enum Outcome {
        /// Everything was written.
        case drained
        /// The socket took part of it (`EAGAIN`): wait for EPOLLOUT.
        case blocked
        /// The peer is gone (a reset, a broken pipe): what waits is dropped.
        case failed
    }

    private var buffers = CircularBuffer<ByteBuffer>(initialCapacity: 4)
    private(set) var bytes = 0

    var isEmpty: Bool { bytes == 0 }

    mutating func append(_ buffer: ByteBuffer) {
        guard buffer.readableBytes > 0 else { return }
        bytes += buffer.readableBytes
        buffers.append(buffer)
    }

    mutating func removeAll() {
        buffers.removeAll(keepingCapacity: true)
        bytes = 0
    }

    /// Writes as much as `fd` takes (at most 16 buffers per `writev`, repeated while it takes them all).
    mutating func write(to fd: Int32) -> Outcome {
        while bytes > 0 {
            let written: Int
            if buffers.count == 1 {
                written = buffers[buffers.startIndex].withUnsafeReadableBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            } else {
                written = gatherWrite(fd)
            }
            if written < 0 {
                let code = errno
                if code == EINTR { continue }
                if code == EAGAIN || code == EWOULDBLOCK { return .blocked }
                removeAll()
                return .failed
            }
            consume(written)
            if bytes > 0 && written >= 0 {
                // A short write: the socket's buffer is full.
                return .blocked
            }
        }
        return .drained
    }

    private func gatherWrite(_ fd: Int32) -> Int {
        let count = min(buffers.count, 16)
        return withUnsafeTemporaryAllocation(of: iovec.self, capacity: count) { vectors in
            // The buffers' storage stays alive (and unmoved) for the call: they are held by `buffers`.
            var index = buffers.startIndex
            for i in 0..<count {
                buffers[index].withUnsafeReadableBytes { bytes in
                    vectors[i] = iovec(iov_base: UnsafeMutableRawPointer(mutating: bytes.baseAddress), iov_len: bytes.count)
                }
                index = buffers.index(after: index)
            }
            return Glibc.writev(fd, vectors.baseAddress, Int32(count))
        }
    }

    private mutating func consume(_ written: Int) {
        var left = written
        bytes -= written
        while left > 0, var first = buffers.first {
            if first.readableBytes <= left {
                left -= first.readableBytes
                buffers.removeFirst()
            } else {
                first.moveReaderIndex(forwardBy: left)
                buffers[buffers.startIndex] = first
                left = 0
            }
        }
    }
}
