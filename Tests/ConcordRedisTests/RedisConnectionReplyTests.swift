import ConcordSessionsTesting
import NIOCore
import NIOPosix
import Testing

@testable import ConcordRedis

/// The connection's reply path against a scripted server on loopback: replies split across reads or packed into
/// one, and replies that break the protocol or the decoder's limits (a typed error, the connection closed).
@Suite(.timeLimit(.minutes(1))) struct RedisConnectionReplyTests {
    /// Answers the n-th read of a connection with `script(n)`: chunks written one after another, 20 ms apart.
    final class ScriptedServerHandler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let script: @Sendable (Int) -> [String]
        private var reads = 0

        init(script: @escaping @Sendable (Int) -> [String]) { self.script = script }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let index = reads
            reads += 1
            let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
            for (offset, chunk) in script(index).enumerated() {
                context.eventLoop.scheduleTask(in: .milliseconds(20 * Int64(offset))) {
                    loopBound.value.writeAndFlush(NIOAny(ByteBuffer(string: chunk)), promise: nil)
                }
            }
        }
    }

    static func withScriptedServer(
        _ script: @escaping @Sendable (Int) -> [String],
        maximumBufferSize: Int? = nil,
        _ body: (RedisConnection) async throws -> Void
    ) async throws {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ScriptedServerHandler(script: script))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let endpoint = RedisEndpoint(host: "127.0.0.1", port: server.localAddress?.port ?? 0)
        var configuration = RedisClientConfiguration.testing(endpoints: [endpoint])
        configuration.commandTimeout = .seconds(5)
        if let maximumBufferSize { configuration.decoder.maximumBufferSize = maximumBufferSize }
        do {
            let connection = try await RedisConnection.connect(to: endpoint, configuration: configuration)
            defer { connection.close() }
            try await body(connection)
        } catch {
            try? await server.close()
            throw error
        }
        try await server.close()
    }

    @Test func aReplySplitAcrossReadsAndTwoRepliesInOneReadAreBothDelivered() async throws {
        try await Self.withScriptedServer({ read in
            // Each reply is written only after its command arrived: the first two in two parts each (the second
            // one split inside its bulk string), the pair's two replies in one write.
            switch read {
            case 0: ["+O", "K\r\n"]
            case 1: ["$3\r\nab", "c\r\n"]
            default: [":1\r\n:2\r\n"]
            }
        }) { connection in
            let first = try await connection.send(.ping())
            #expect(first == .simpleString("OK"))
            let second = try await connection.send(.ping())
            #expect(second == .bulkString(ByteBuffer(string: "abc")))
            let pair = try await connection.send([.ping(), .ping()])
            #expect(pair == [.integer(1), .integer(2)])
        }
    }

    @Test(arguments: [
        "!not resp\r\n",  // unknown type byte
        "$99999999999\r\n",  // bulk longer than maximumBulkLength
        "*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n",  // nesting
    ])
    func aReplyThatBreaksTheProtocolFailsTypedAndClosesTheConnection(reply: String) async throws {
        try await Self.withScriptedServer({ _ in [reply] }) { connection in
            do {
                _ = try await connection.send(.ping())
                Issue.record("a malformed reply was accepted")
            } catch let error as RedisClientError {
                #expect(error.metricKind == .protocolError, "\(error)")
            }
            #expect(await eventually { !connection.isActive })
        }
    }

    @Test func anIncompleteReplyBeyondMaximumBufferSizeFailsTyped() async throws {
        let chunk = String(repeating: "x", count: 200)
        try await Self.withScriptedServer(
            { _ in ["$100000\r\n", chunk, chunk] },
            maximumBufferSize: 256
        ) { connection in
            do {
                _ = try await connection.send(.ping())
                Issue.record("a reply beyond maximumBufferSize was buffered")
            } catch let error as RedisClientError {
                #expect(error.metricKind == .protocolError, "\(error)")
                #expect("\(error)".contains("maximumBufferSize"), "\(error)")
            }
            #expect(await eventually { !connection.isActive })
        }
    }
}
