#if canImport(Glibc)
import Glibc
#endif
import ConcordSessionsTesting
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// A small real HTTP/1.1 server on loopback for the proxy tests: answers every request with its own name in the
/// body and an `x-backend` header; `/health` answers 200 or 503 as the test sets; `/echo-xff` returns the
/// X-Forwarded-For it saw. Keep-alive is honoured, so the proxy's pooling is exercised.
final class TestBackend: StoppableTestServer {
    let name: String
    private let channel: any Channel
    private let state: NIOLockedValueBox<(healthy: Bool, requests: Int, healthChecks: Int)>
    private let children: NIOLockedValueBox<[any Channel]>
    var port: Int { channel.localAddress!.port! }
    var address: String { "127.0.0.1:\(port)" }

    private init(name: String, channel: any Channel, state: NIOLockedValueBox<(healthy: Bool, requests: Int, healthChecks: Int)>,
                 children: NIOLockedValueBox<[any Channel]>) {
        self.name = name
        self.channel = channel
        self.state = state
        self.children = children
    }

    /// With `tls`, the backend speaks HTTPS only.
    static func start(name: String, port: Int = 0, tls: NIOSSLContext? = nil) async throws -> TestBackend {
        let state = NIOLockedValueBox((healthy: true, requests: 0, healthChecks: 0))
        let children = NIOLockedValueBox<[any Channel]>([])
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(ChannelOptions.socket(SocketOptionLevel(SOL_SOCKET), SO_REUSEPORT), value: 1)  // stopHoldingPort()
            .childChannelInitializer { channel in
                children.withLockedValue { $0.append(channel) }
                return channel.eventLoop.makeCompletedFuture {
                    if let tls { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls)) }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Handler(name: name, state: state))
                }
            }
            .bind(host: "127.0.0.1", port: port).get()
        return TestBackend(name: name, channel: channel, state: state, children: children)
    }

    func setHealthy(_ healthy: Bool) { state.withLockedValue { $0.healthy = healthy } }
    var requests: Int { state.withLockedValue { $0.requests } }
    /// `GET /health` requests answered so far.
    var healthChecks: Int { state.withLockedValue { $0.healthChecks } }

    /// Closes the listener and every open connection, as a killed process would.
    func stop() async {
        try? await channel.close()
        for child in children.withLockedValue({ $0 }) { try? await child.close() }
    }


    private final class Handler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let name: String
        let state: NIOLockedValueBox<(healthy: Bool, requests: Int, healthChecks: Int)>
        var head: HTTPRequestHead?
        var bodyBytes = 0

        init(name: String, state: NIOLockedValueBox<(healthy: Bool, requests: Int, healthChecks: Int)>) {
            self.name = name
            self.state = state
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let h):
                head = h
                bodyBytes = 0
            case .body(let b):
                bodyBytes += b.readableBytes
            case .end:
                guard let head else { return }
                var status = HTTPResponseStatus.ok
                var text = name
                if head.uri == "/health" {
                    status = state.withLockedValue { state in
                        state.healthChecks += 1
                        return state.healthy
                    } ? .ok : .serviceUnavailable
                } else {
                    state.withLockedValue { $0.requests += 1 }
                    if head.uri == "/echo-xff" { text = head.headers["x-forwarded-for"].joined(separator: ",") }
                    if head.method == .POST || bodyBytes > 0 { text += " body=\(bodyBytes)" }
                }
                var headers = HTTPHeaders()
                headers.add(name: "x-backend", value: name)
                headers.add(name: "content-length", value: String(text.utf8.count))
                let response = HTTPResponseHead(version: head.version, status: status, headers: headers)
                let respond = { [self] in
                    context.write(wrapOutboundOut(.head(response)), promise: nil)
                    context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: text)))), promise: nil)
                    context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
                }
                // `/slow`: the response leaves 300 ms later (a request still in flight while the client sends more).
                if head.uri == "/slow" {
                    let loopBound = NIOLoopBound(respond, eventLoop: context.eventLoop)
                    context.eventLoop.scheduleTask(in: .milliseconds(300)) { loopBound.value() }
                } else {
                    respond()
                }
            }
        }
    }
}

/// A TCP echo server that prefixes nothing: it returns its name once on connect, then echoes.
final class TestEchoBackend: StoppableTestServer {
    let name: String
    private let channel: any Channel
    var port: Int { channel.localAddress!.port! }
    var address: String { "127.0.0.1:\(port)" }

    private init(name: String, channel: any Channel) {
        self.name = name
        self.channel = channel
    }

    static func start(name: String) async throws -> TestEchoBackend {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(ChannelOptions.socket(SocketOptionLevel(SOL_SOCKET), SO_REUSEPORT), value: 1)  // stopHoldingPort()
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Echo(name: name))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return TestEchoBackend(name: name, channel: channel)
    }

    func stop() async { try? await channel.close() }

    private final class Echo: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let name: String
        init(name: String) { self.name = name }

        func channelActive(context: ChannelHandlerContext) {
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: "\(name):")), promise: nil)
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            context.writeAndFlush(data, promise: nil)
        }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            // Half-close from the proxy: answer "bye" and close our side too.
            if let event = event as? ChannelEvent, event == .inputClosed {
                context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: "|bye"))).assumeIsolated().whenComplete { _ in
                    context.close(promise: nil)
                }
            }
        }
    }
}

/// A backend that is failing: it accepts connections and closes each one as soon as a request arrives, before
/// any response byte (as a dying process does). With `answeringFirstRequest`, each connection first answers one
/// request (200, keep-alive) and closes on the next: a pooled connection that turns out stale when reused.
final class TestClosingBackend: Sendable {
    private let scripted: TestScriptedBackend
    var address: String { scripted.address }

    private init(scripted: TestScriptedBackend) { self.scripted = scripted }

    static func start(answeringFirstRequest: Bool = false) async throws -> TestClosingBackend {
        let fresh = TestScriptedBackend.Reply(bytes: "HTTP/1.1 200 OK\r\nContent-Length: 6\r\nX-Backend: closer\r\n\r\nfresh\n")
        return TestClosingBackend(scripted: try await TestScriptedBackend.start { _, index in
            answeringFirstRequest && index == 0 ? fresh : .close
        })
    }

    func stop() async { await scripted.stop() }
}

/// A test server that a test stops while the proxy may still send to it.
protocol StoppableTestServer: Sendable {
    var port: Int { get }
    func stop() async
}

extension StoppableTestServer {
    /// Stops, holding the port with a bound, non-listening socket (connects are refused) until the caller closes
    /// it. Otherwise a server that another test starts meanwhile can get the same port — seen: a Redis test's
    /// listener that never accepts — and the proxy, still sending this backend's keys there, waits for an answer
    /// that never comes. The holder joins the port (`SO_REUSEPORT`) *before* the server closes, so there is no
    /// moment when the port is free.
    func stopHoldingPort() async throws -> LoopbackSocket {
        let port = self.port  // read before stopping: it comes from the open channel
        let hold = try LoopbackSocket.refusing(port: port, sharingPort: true)
        await stop()
        // The premise of the callers is a dead backend: connects to its port are refused. Check it (at most 30 s),
        // and say so if it never holds. (It failed under the full suite while the holder also set SO_REUSEADDR: a
        // server another test started with SO_REUSEADDR could then take the port; see LoopbackSocket.)
        for _ in 0..<300 {
            let accepted = try? await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(.milliseconds(500))
                .connect(host: "127.0.0.1", port: port).get()
            guard let accepted else { return hold }
            try? await accepted.close()
            try await Task.sleep(for: .milliseconds(100))
        }
        hold.close()
        throw TestBackendError("connections to the stopped backend's port \(port) were still accepted after 30 s")
    }
}

struct TestBackendError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
