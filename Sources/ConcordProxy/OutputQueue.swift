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
    /// Every byte ever appended (a slow or stalled peer is told apart by it, ``ResponseProgress``).
    private(set) var appended = 0

    var isEmpty: Bool { bytes == 0 }

    mutating func append(_ buffer: ByteBuffer) {
        guard buffer.readableBytes > 0 else { return }
        bytes += buffer.readableBytes
        appended &+= buffer.readableBytes
        buffers.append(buffer)
    }

    mutating func removeAll() {
        buffers.removeAll(keepingCapacity: true)
        bytes = 0
    }

    /// Writes as much as `fd` takes: at most 16 buffers per call, repeated until the socket takes less than it was
    /// offered (`EAGAIN` or a short write: its buffer is full). `MSG_NOSIGNAL` throughout: a peer that is gone is an
    /// error here, never a SIGPIPE.
    mutating func write(to fd: Int32) -> Outcome {
        while bytes > 0 {
            let (offered, written) = send(to: fd)
            if written < 0 {
                let code = errno
                if code == EINTR { continue }
                if code == EAGAIN || code == EWOULDBLOCK { return .blocked }
                removeAll()
                return .failed
            }
            consume(written)
            if written < offered { return .blocked }
        }
        return .drained
    }

    /// One `send`, or one `sendmsg` over the first 16 buffers: how many bytes it offered, and what it returned.
    private func send(to fd: Int32) -> (offered: Int, written: Int) {
        if buffers.count == 1 {
            return buffers[buffers.startIndex].withUnsafeReadableBytes {
                ($0.count, Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)))
            }
        }
        let count = min(buffers.count, 16)
        return withUnsafeTemporaryAllocation(of: iovec.self, capacity: count) { vectors in
            // The buffers' storage stays alive (and unmoved) for the call: they are held by `buffers`.
            var offered = 0
            var index = buffers.startIndex
            for i in 0..<count {
                buffers[index].withUnsafeReadableBytes { bytes in
                    vectors[i] = iovec(iov_base: UnsafeMutableRawPointer(mutating: bytes.baseAddress), iov_len: bytes.count)
                    offered += bytes.count
                }
                index = buffers.index(after: index)
            }
            var message = msghdr()
            message.msg_iov = vectors.baseAddress
            message.msg_iovlen = count
            return (offered, Glibc.sendmsg(fd, &message, Int32(MSG_NOSIGNAL)))
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
