import NIOCore
import Testing

#if canImport(Glibc)
import Glibc
#endif

@testable import ConcordProxy

/// ``OutputQueue`` on a real socket pair: what it reports decides whether the direct HTTP engine waits for an
/// EPOLLOUT edge, so a wrong `.blocked` would stall a connection for good (edge-triggered: no edge comes while the
/// socket stays writable).
@Suite struct OutputQueueTests {
    private static func withSocketPair(_ body: (Int32, Int32) throws -> Void) throws {
        var fds: [Int32] = [-1, -1]
        try #require(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0, &fds) == 0)
        defer { Glibc.close(fds[0]); Glibc.close(fds[1]) }
        try body(fds[0], fds[1])
    }

    private static func readAll(_ fd: Int32) -> [UInt8] {
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count <= 0 { return received }
            received += chunk[0..<count]
        }
    }

    /// More buffers than one call takes (16): all written, and `.drained`. It said `.blocked` after the first 16,
    /// with the socket still writable.
    @Test func moreBuffersThanOneCallTakesAreAllWritten() throws {
        try Self.withSocketPair { writer, reader in
            var queue = OutputQueue()
            var expected: [UInt8] = []
            for index in 0..<40 {
                let piece = Array("piece \(index);".utf8)
                expected += piece
                queue.append(ByteBuffer(bytes: piece))
            }
            #expect(queue.write(to: writer) == .drained)
            #expect(queue.isEmpty)
            #expect(Self.readAll(reader) == expected)
        }
    }

    /// A socket whose buffer fills: `.blocked`, the rest kept in order and written once the peer reads.
    @Test func aFullSocketBlocksAndTheRestFollowsInOrder() throws {
        try Self.withSocketPair { writer, reader in
            var queue = OutputQueue()
            let large = (0..<(8 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            for start in stride(from: 0, to: large.count, by: 1 << 20) {
                queue.append(ByteBuffer(bytes: large[start..<(start + (1 << 20))]))
            }
            var received: [UInt8] = []
            var rounds = 0
            while queue.write(to: writer) == .blocked && rounds < 10_000 {
                received += Self.readAll(reader)
                rounds += 1
            }
            received += Self.readAll(reader)
            #expect(rounds > 0, "8 MiB fit in a socket pair's buffer: the test did not block")
            #expect(received == large)
        }
    }

    /// A peer that is gone: `.failed` and the queue emptied (no SIGPIPE: `MSG_NOSIGNAL`).
    @Test func aWriteToAClosedPeerFails() throws {
        try Self.withSocketPair { writer, _ in
            var queue = OutputQueue()
            queue.append(ByteBuffer(string: "a"))
            queue.append(ByteBuffer(string: "b"))
            _ = shutdown(writer, Int32(SHUT_WR))  // a send now fails with EPIPE
            #expect(queue.write(to: writer) == .failed)
            #expect(queue.isEmpty)
        }
    }
}
