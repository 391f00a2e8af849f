import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// A backend that holds every request until the test lets answers go (``release(_:)``), or for a fixed time
/// (`answerAfter`), counting how many it holds at once — to see what reaches a backend while the proxy queues the
/// rest. Each answer is a 200 with the backend's name in the body; keep-alive is honoured.
final class TestGatedBackend: StoppableTestServer {
    let name: String
    private let channel: any Channel
    private let state: NIOLockedValueBox<State>
    var port: Int { channel.localAddress!.port! }
    var address: String { "127.0.0.1:\(port)" }

    struct State {
        var held: [any Channel] = []
        var arrived = 0
        var mostHeldAtOnce = 0
        /// Answer at once from now on.
        var open = false
    }

    private init(name: String, channel: any Channel, state: NIOLockedValueBox<State>) {
        self.name = name
        self.channel = channel
        self.state = state
    }

    static func start(name: String, answerAfter: TimeAmount? = nil) async throws -> TestGatedBackend {
        let state = NIOLockedValueBox(State())
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Gate(name: name, state: state, answerAfter: answerAfter))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return TestGatedBackend(name: name, channel: channel, state: state)
    }

    /// Requests that arrived so far, and the most held at once.
    var arrived: Int { state.withLockedValue { $0.arrived } }
    var held: Int { state.withLockedValue { $0.held.count } }
    var mostHeldAtOnce: Int { state.withLockedValue { $0.mostHeldAtOnce } }

    /// Answers the `count` oldest held requests.
    func release(_ count: Int = 1) {
        let answering = state.withLockedValue { state -> [any Channel] in
            let n = min(count, state.held.count)
            defer { state.held.removeFirst(n) }
            return Array(state.held.prefix(n))
        }
        for channel in answering { Self.answer(on: channel, name: name) }
    }

    /// Answers every held request and every later one at once.
    func openGate() {
        let answering = state.withLockedValue { state -> [any Channel] in
            state.open = true
            defer { state.held.removeAll() }
            return state.held
        }
        for channel in answering { Self.answer(on: channel, name: name) }
    }

    func stop() async {
        openGate()
        try? await channel.close()
    }

    private static func answer(on channel: any Channel, name: String) {
        let body = ByteBuffer(string: name)
        var headers = HTTPHeaders([("content-length", "\(body.readableBytes)"), ("x-backend", name)])
        headers.add(name: "connection", value: "keep-alive")
        channel.write(HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers)), promise: nil)
        channel.write(HTTPServerResponsePart.body(.byteBuffer(body)), promise: nil)
        channel.writeAndFlush(HTTPServerResponsePart.end(nil), promise: nil)
    }

    private final class Gate: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        let name: String
        let state: NIOLockedValueBox<State>
        let answerAfter: TimeAmount?

        init(name: String, state: NIOLockedValueBox<State>, answerAfter: TimeAmount?) {
            self.name = name
            self.state = state
            self.answerAfter = answerAfter
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard case .end = unwrapInboundIn(data) else { return }
            let channel = context.channel
            let answerNow = state.withLockedValue { state -> Bool in
                state.arrived += 1
                if state.open { return true }
                state.held.append(channel)
                state.mostHeldAtOnce = max(state.mostHeldAtOnce, state.held.count)
                return false
            }
            if answerNow {
                TestGatedBackend.answer(on: channel, name: name)
            } else if let answerAfter {
                let (name, state) = (name, state)
                context.eventLoop.scheduleTask(in: answerAfter) {
                    state.withLockedValue { state in
                        if let index = state.held.firstIndex(where: { $0 === channel }) { state.held.remove(at: index) }
                    }
                    TestGatedBackend.answer(on: channel, name: name)
                }
            }
        }
    }
}
