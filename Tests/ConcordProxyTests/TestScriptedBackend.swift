import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A backend that answers each request with bytes the test writes — responses NIO's encoder would not produce:
/// chunked with extensions and trailers, no length at all, hop-by-hop fields, malformed. Requests are read up
/// to their blank line (the tests send no request bodies); `reply` gets the request head and the request's index
/// on its connection (0 for the first), and says what to send and whether to close the connection after it.
final class TestScriptedBackend: StoppableTestServer {
    struct Reply: Sendable {
        var bytes: String
        var closeAfter = false
        /// Sent in pieces of this many bytes, 2 ms apart, so the proxy reads the response in many parts.
        var piecesOf: Int?
        /// After this reply the connection is no longer HTTP (a 101): every byte that arrives is sent back.
        var thenEcho = false

        /// Close the connection without a response byte, as a dying process does.
        static let close = Reply(bytes: "", closeAfter: true)
    }

    private let channel: any Channel
    private let accepted: NIOLockedValueBox<Int>
    var port: Int { channel.localAddress!.port! }
    var address: String { "127.0.0.1:\(port)" }
    /// Connections accepted so far (the proxy's and its health checker's).
    var connectionsAccepted: Int { accepted.withLockedValue { $0 } }

    private init(channel: any Channel, accepted: NIOLockedValueBox<Int>) {
        self.channel = channel
        self.accepted = accepted
    }

    static func start(_ reply: @escaping @Sendable (String, Int) -> Reply) async throws -> TestScriptedBackend {
        let accepted = NIOLockedValueBox(0)
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                accepted.withLockedValue { $0 += 1 }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Script(reply: reply))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return TestScriptedBackend(channel: channel, accepted: accepted)
    }

    func stop() async { try? await channel.close() }

    private final class Script: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let reply: @Sendable (String, Int) -> Reply
        var pending = ""
        var answered = 0
        var echoing = false

        init(reply: @escaping @Sendable (String, Int) -> Reply) { self.reply = reply }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            if echoing {
                context.writeAndFlush(data, promise: nil)
                return
            }
            pending += String(buffer: unwrapInboundIn(data))
            while let end = pending.range(of: "\r\n\r\n") {
                let head = String(pending[..<end.lowerBound])
                pending = String(pending[end.upperBound...])
                let answer = reply(head, answered)
                answered += 1
                if let size = answer.piecesOf {
                    send(Array(answer.bytes.utf8), piecesOf: size, closeAfter: answer.closeAfter, context: context)
                    if answer.thenEcho {
                        echoing = true
                        return
                    }
                    continue
                }
                let written = context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: answer.bytes)))
                if answer.thenEcho {
                    echoing = true
                    if !pending.isEmpty { context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: pending)), promise: nil) }
                    pending = ""
                    return
                }
                if answer.closeAfter {
                    written.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
                    return
                }
            }
        }

        private func send(_ bytes: [UInt8], piecesOf size: Int, closeAfter: Bool, context: ChannelHandlerContext) {
            guard !bytes.isEmpty else {
                if closeAfter { context.close(promise: nil) }
                return
            }
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: bytes.prefix(size))), promise: nil)
            let rest = Array(bytes.dropFirst(size))
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            context.eventLoop.scheduleTask(in: .milliseconds(2)) {
                let (script, context) = loopBound.value
                script.send(rest, piecesOf: size, closeAfter: closeAfter, context: context)
            }
        }
    }
}
