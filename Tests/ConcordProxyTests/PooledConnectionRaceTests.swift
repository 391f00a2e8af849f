import ConcordSessionsTesting
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing

@testable import ConcordProxy

/// A backend that stops gracefully closes its idle keep-alive connections all at once. A POST that arrives in the
/// same event-loop iteration as such a close (its FIN already in the kernel, not yet read by the loop) must not be
/// sent on that connection: it could not be resent, and the client would get a 502. Both HTTP engines: the test holds
/// the loop that serves the client (SwiftNIO's event loop, or the direct engine's thread).
@Suite(.serialized, .timeLimit(.minutes(1))) struct PooledConnectionRaceTests {
    /// Answers every request `200` with its method as the body, and notes which connection each method came on.
    final class Answering: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let methods: NIOLockedValueBox<[(method: String, connection: ObjectIdentifier)]>
        init(methods: NIOLockedValueBox<[(method: String, connection: ObjectIdentifier)]>) { self.methods = methods }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let text = String(buffer: unwrapInboundIn(data))
            for head in text.components(separatedBy: "\r\n\r\n").dropLast() {
                let method = head.prefix { $0 != " " }
                methods.withLockedValue { $0.append((String(method), ObjectIdentifier(context.channel))) }
                context.write(wrapOutboundOut(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: \(method.utf8.count)\r\n\r\n\(method)")), promise: nil)
            }
            context.flush()
        }
    }

    /// Collects what the proxy sends back on a client connection.
    final class Collector: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let received = NIOLockedValueBox("")
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let text = String(buffer: unwrapInboundIn(data))
            received.withLockedValue { $0 += text }
        }
    }

    @Test(arguments: [HTTPEngine.direct, .nio])
    func aPostIsNotSentOnAPooledConnectionTheBackendHasJustClosed(engine: HTTPEngine) async throws {
        let children = NIOLockedValueBox<[any Channel]>([])
        let methods = NIOLockedValueBox<[(method: String, connection: ObjectIdentifier)]>([])
        let backend = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                children.withLockedValue { $0.append(channel) }
                return channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Answering(methods: methods)) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        // One event loop for the proxy, so the test can hold it while the POST and the backend's FIN arrive.
        let proxyGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var config = ProxyConfiguration(backends: [HostPort(host: "127.0.0.1", port: backend.localAddress!.port!)], balance: .roundRobin)
        config.listen = HostPort(host: "127.0.0.1", port: 0)
        config.health = ProxyHarness.quietHealth
        config.httpEngine = engine
        let server = try ProxyServer(configuration: config, logger: Logger(label: "proxy-test"), group: proxyGroup)
        let port = try await server.start().listener.port!
        #expect(server.httpEngineInUse == engine)
        let collector = Collector()
        var client: (any Channel)?
        do {
            // A GET leaves one keep-alive connection to the backend in the pool.
            let get = try await RawClient.get(port: port)
            #expect(get.status == 200 && get.body == "GET")
            let connected = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .channelInitializer { channel in channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(collector) } }
                .connect(host: "127.0.0.1", port: port).get()
            client = connected
            try await Task.sleep(for: .milliseconds(100))  // accepted and registered on the proxy's loop

            // Hold the proxy's loop until both the POST and the backend's FIN are in its kernel buffers. The hold ends
            // when the test says so (not after a fixed time, which a loaded machine can overrun), or after 10 s.
            let hold = ThreadHold()
            var closed: [ObjectIdentifier] = []
            let held: EventLoopFuture<Void>
            if engine == .direct {
                let promise = proxyGroup.next().makePromise(of: Void.self)
                #expect(server.runOnDirectEngineLoops {
                    hold.block(atMostSeconds: 10)
                    promise.succeed()
                })
                held = promise.futureResult
            } else {
                held = proxyGroup.next().submit { hold.block(atMostSeconds: 10) }
            }
            do {
                try #require(await eventually { hold.isHolding }, "the proxy's loop was never held")
                try await connected.writeAndFlush(ByteBuffer(string: "POST /cart HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n"))
                for child in children.withLockedValue({ $0 }) {
                    closed.append(ObjectIdentifier(child))
                    try? await child.close()
                }
                try await Task.sleep(for: .milliseconds(50))  // loopback delivery of the FINs
            } catch {
                hold.release()
                throw error
            }
            hold.release()
            try await held.get()

            let deadline = ContinuousClock.now.advanced(by: .seconds(5))
            while !collector.received.withLockedValue({ $0.contains("\r\n\r\n") }) && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(10))
            }
            let answer = collector.received.withLockedValue { $0 }
            #expect(answer.hasPrefix("HTTP/1.1 200 OK") && answer.hasSuffix("POST"), "\(answer)")
            let postConnections = methods.withLockedValue { $0.filter { $0.method == "POST" }.map(\.connection) }
            #expect(postConnections.count == 1 && !closed.contains(postConnections[0]), "the POST went once, on a new connection")
        } catch {
            Issue.record(error)
        }
        try? await client?.close()
        await server.stop(drainTimeout: .milliseconds(200))
        try? await backend.close()
        try await proxyGroup.shutdownGracefully()
    }
}
