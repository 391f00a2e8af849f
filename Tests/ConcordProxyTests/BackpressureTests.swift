import NIOCore
import NIOPosix
import Synchronization
import Testing

@testable import ConcordProxy

/// A client that stops reading holds the backend back: the proxy stops reading the backend while the client side
/// is not writable, so what it buffers stays bounded (watermarks plus socket buffers) instead of the whole body.
@Suite(.timeLimit(.minutes(2))) struct BackpressureTests {
    /// 128 MiB: far more than every socket buffer on the way together (≤ 4 MiB send + ≤ 32 MiB receive per hop here).
    static let bodyBytes = 128 << 20
    /// What may have left the backend while the client reads nothing, at most.
    static let boundWhileStalled = 64 << 20

    @Test(arguments: [ProxyMode.http, .tcp])
    func aClientThatStopsReadingHoldsTheBackendBack(mode: ProxyMode) async throws {
        let backend = try await BulkBackend.start(bodyBytes: Self.bodyBytes)
        do {
            var config = ProxyConfiguration(backends: [try HostPort(parsing: backend.address)], mode: mode, balance: .roundRobin)
            config.health = ProxyHarness.quietHealth
            try await ProxyHarness.withProxy(config) { _, port in
                let received = ByteTally()
                let client = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                    .channelOption(.autoRead, value: false)
                    // A fixed, small receive buffer: the kernel's autotuning would otherwise soak up megabytes.
                    .channelOption(.socketOption(.so_rcvbuf), value: 64 << 10)
                    .channelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHandler(ByteCounter(received: received))
                        }
                    }
                    .connect(host: "127.0.0.1", port: port).get()
                do {
                    try await client.writeAndFlush(ByteBuffer(string: "GET /bulk HTTP/1.1\r\nHost: t\r\n\r\n"))
                    // Reads nothing for a while: the backend writes until the chain is full, then waits.
                    let deadline = ContinuousClock.now + .seconds(8)
                    var stalledAt = -1
                    while ContinuousClock.now < deadline {
                        try await Task.sleep(for: .milliseconds(400))
                        let sent = backend.sent.count
                        // Stalled: nothing more left the backend since the last look (once it began sending).
                        if sent == stalledAt && sent > 0 { break }
                        stalledAt = sent
                    }
                    #expect(stalledAt > 0, "the backend sent nothing")
                    #expect(stalledAt < Self.boundWhileStalled, "the backend sent \(stalledAt) bytes to a client reading nothing")
                    #expect(received.count == 0)

                    // Reading again lets the rest through, every byte.
                    try await client.setOption(.autoRead, value: true).get()
                    let expected = Self.bodyBytes + BulkBackend.head(bodyBytes: Self.bodyBytes).utf8.count
                    let end = ContinuousClock.now + .seconds(60)
                    while received.count < expected && ContinuousClock.now < end {
                        try await Task.sleep(for: .milliseconds(50))
                    }
                    #expect(received.count == expected)
                    #expect(backend.sent.count == Self.bodyBytes)
                } catch {
                    try? await client.close()
                    throw error
                }
                try? await client.close()
            }
        } catch {
            await backend.stop()
            throw error
        }
        await backend.stop()
    }

    private final class ByteCounter: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let received: ByteTally
        init(received: ByteTally) { self.received = received }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            received.add(unwrapInboundIn(data).readableBytes)
        }
    }
}

/// A byte count shared between an event loop and the test.
final class ByteTally: Sendable {
    private let value = Atomic<Int>(0)
    var count: Int { value.load(ordering: .relaxed) }
    func add(_ bytes: Int) { value.add(bytes, ordering: .relaxed) }
}

/// A backend that answers any request with a large body, written while its connection is writable (so it never
/// buffers more than NIO's watermarks itself), counting the body bytes the kernel accepted.
final class BulkBackend: Sendable {
    let sent: ByteTally
    private let channel: any Channel
    var address: String { "127.0.0.1:\(channel.localAddress!.port!)" }

    static func head(bodyBytes: Int) -> String { "HTTP/1.1 200 OK\r\nContent-Length: \(bodyBytes)\r\n\r\n" }

    static func start(bodyBytes: Int) async throws -> BulkBackend {
        let sent = ByteTally()
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Pump(bodyBytes: bodyBytes, sent: sent))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return BulkBackend(channel: channel, sent: sent)
    }

    private init(channel: any Channel, sent: ByteTally) {
        self.channel = channel
        self.sent = sent
    }

    func stop() async { try? await channel.close() }

    private final class Pump: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let bodyBytes: Int
        let sent: ByteTally
        var queued = 0
        var started = false
        let chunk = ByteBuffer(repeating: UInt8(ascii: "x"), count: 64 << 10)

        init(bodyBytes: Int, sent: ByteTally) {
            self.bodyBytes = bodyBytes
            self.sent = sent
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard !started else { return }
            started = true
            context.write(wrapOutboundOut(ByteBuffer(string: BulkBackend.head(bodyBytes: bodyBytes))), promise: nil)
            pump(context: context)
        }

        func channelWritabilityChanged(context: ChannelHandlerContext) {
            if context.channel.isWritable { pump(context: context) }
            context.fireChannelWritabilityChanged()
        }

        private func pump(context: ChannelHandlerContext) {
            while queued < bodyBytes && context.channel.isWritable {
                let size = min(chunk.readableBytes, bodyBytes - queued)
                queued += size
                let sent = self.sent
                context.write(wrapOutboundOut(chunk.getSlice(at: 0, length: size)!)).whenSuccess {
                    sent.add(size)
                }
            }
            context.flush()
        }
    }
}
