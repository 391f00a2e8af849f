import ConcordNetworking
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix

/// The admin HTTP API and `/metrics`, on its own listener (loopback unless configured otherwise):
///
/// | request | effect |
/// |---|---|
/// | `GET /backends` | JSON list: id, state (up/down/pending), draining, active, requests, queued, check (null before the first) |
/// | `POST /backends` body `HOST:PORT` (or `?address=HOST:PORT`) | add a backend; answered after its first health check |
/// | `DELETE /backends/HOST:PORT` | remove it |
/// | `POST /backends/HOST:PORT/drain`, `DELETE …/drain` | start / end draining |
/// | `GET /metrics` | Prometheus text |
/// | `GET /health` | `ok` |
enum AdminServer {
    static func bind(to address: SocketAddress, group: any EventLoopGroup, balancer: Balancer, metrics: ProxyMetrics,
                     logger: Logger) async throws -> any Channel {
        try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer(AcceptPauseHandler.installer(alarm: balancer.localResources))
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(AdminHandler(balancer: balancer, metrics: metrics, logger: logger))
                }
            }
            .bind(to: address).get()
    }

    /// Routes one request; pure apart from the balancer calls, so tests can call it directly.
    static func respond(method: HTTPMethod, uri: String, body: String, balancer: Balancer, metrics: ProxyMetrics)
        -> (HTTPResponseStatus, String, String)
    {
        let answer = self.answer(method: method, uri: uri, body: body, balancer: balancer, metrics: metrics)
        return (answer.status, answer.text, answer.contentType)
    }

    /// ``respond(method:uri:body:balancer:metrics:)``, and the id of the backend a `POST /backends` added (the
    /// handler answers after its first health check; it used to find the id by comparing the backend list before
    /// and after, which a concurrent add could change — 4 answers in 20 named another backend, a probe found).
    static func answer(method: HTTPMethod, uri: String, body: String, balancer: Balancer, metrics: ProxyMetrics)
        -> (status: HTTPResponseStatus, text: String, contentType: String, added: String?)
    {
        let json = "application/json"
        let text = "text/plain; charset=utf-8"
        let path = String(RequestKeyExtractor.path(of: uri))
        let segments = pathSegments(path)
        do {
            switch (method, segments.count, segments.first) {
            case (.GET, 1, "metrics"):
                return (.ok, metrics.exposition(), "text/plain; version=0.0.4", nil)
            case (.GET, 1, "health"):
                return (.ok, "ok\n", text, nil)
            case (.GET, 1, "backends"):
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                return (.ok, String(decoding: try encoder.encode(balancer.statuses()), as: UTF8.self) + "\n", json, nil)
            case (.POST, 1, "backends"):
                var address = RequestKeyExtractor.queryValue(named: "address", in: uri).map(String.init)
                    ?? body.trimmingWhitespace()
                if address.hasPrefix("{"), let data = address.data(using: .utf8),
                   let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any], let value = object["address"] as? String {
                    address = value
                }
                let hostPort = try HostPort(parsing: address.removingPercentEncoding ?? address)
                try balancer.add(hostPort)
                return (.created, "added \(hostPort)\n", text, hostPort.description)
            case (.DELETE, 2, "backends"):
                try balancer.remove(id: segments[1])
                return (.ok, "removed \(segments[1])\n", text, nil)
            case (.POST, 3, "backends") where segments[2] == "drain", (.DELETE, 3, "backends") where segments[2] == "drain":
                try balancer.setDraining(id: segments[1], method == .POST)
                // Draining the last backend that takes new users is allowed (they are about to be replaced, say),
                // but the operator should know every new user gets 503 until one does.
                let warning = method == .POST && !balancer.hasBackendTakingNewWork
                    ? "warning: no backend takes new users now; requests with no bound backend get 503 until one is added or undrained\n" : ""
                return (.ok, "\(segments[1]) \(method == .POST ? "draining" : "no longer draining")\n" + warning, text, nil)
            default:
                if let allowed = allowedMethods(segments) {
                    let names = allowed.map { "\($0)" }.joined(separator: ", ")
                    return (.methodNotAllowed, "\(path) takes \(names), not \(method); see docs/proxy.md\n", text, nil)
                }
                return (.notFound, "unknown admin request \(method) \(path); see docs/proxy.md\n", text, nil)
            }
        } catch let error as ProxyError {
            return (HTTPResponseStatus(statusCode: error.adminStatusCode), error.description + "\n", text, nil)
        } catch {
            return (.internalServerError, "\(error)\n", text, nil)
        }
    }
}

extension AdminServer {
    /// The answer's last line for a backend just added: its first health check's verdict, or nil while it is still
    /// pending and `waited` is false.
    static func firstCheckOutcome(of id: String, balancer: Balancer, waited: Bool) -> String? {
        guard let status = balancer.statuses().first(where: { $0.id == id }) else { return "\(id) was removed meanwhile\n" }
        // (One added when no other backend was up is up before its first check: the check, not the state, says
        // whether the verdict came.)
        guard let check = status.check else {
            guard waited else { return nil }
            return status.state == "up"
                ? "\(id) is up without a health check verdict yet: no other backend was up, so it serves at once; out if its first check fails (GET /backends)\n"
                : "\(id) is pending: no health check verdict yet; it joins when one passes (GET /backends)\n"
        }
        switch status.state {
        case "up":
            return "\(id) is up: its first health check passed (\(check))\n"
        default:
            let rise = balancer.healthConfiguration.rise
            return "\(id) is down: its first health check failed (\(check)); it joins after \(rise) passing check\(rise == 1 ? "" : "s") in a row\n"
        }
    }

    static func pathSegments(_ path: String) -> [String] {
        path.split(separator: "/").map { $0.removingPercentEncoding ?? String($0) }
    }

    /// The methods an admin resource answers (its 405's `Allow`); nil for a path that names none.
    static func allowedMethods(_ segments: [String]) -> [HTTPMethod]? {
        switch (segments.count, segments.first) {
        case (1, "metrics"), (1, "health"): [.GET]
        case (1, "backends"): [.GET, .POST]
        case (2, "backends"): [.DELETE]
        case (3, "backends") where segments[2] == "drain": [.POST, .DELETE]
        default: nil
        }
    }
}

/// One admin connection: a request must arrive whole within ``requestTimeout`` of the connection's start or of
/// the previous response (a client that trickles its head or body, or sits idle, is closed), a body over
/// ``maxBody`` is answered 413, and a malformed request gets NIO's 400 and the connection closes.
private final class AdminHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let balancer: Balancer
    let metrics: ProxyMetrics
    let logger: Logger
    private var head: HTTPRequestHead?
    private var body = ByteBuffer()
    private var bodyTooLarge = false
    private var deadline: Scheduled<Void>?
    private static let maxBody = 64 * 1024
    static let requestTimeout = TimeAmount.seconds(10)

    init(balancer: Balancer, metrics: ProxyMetrics, logger: Logger) {
        self.balancer = balancer
        self.metrics = metrics
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { armDeadline(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        armDeadline(context: context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
        context.fireChannelInactive()
    }

    private func armDeadline(context: ChannelHandlerContext) {
        deadline?.cancel()
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        deadline = context.eventLoop.scheduleTask(in: Self.requestTimeout) { loopBound.value.close(promise: nil) }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A malformed request: HTTPServerProtocolErrorHandler has written its 400 (Connection: close).
        context.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
            body.clear()
            bodyTooLarge = false
        case .body(var chunk):
            if body.readableBytes + chunk.readableBytes <= Self.maxBody { body.writeBuffer(&chunk) } else { bodyTooLarge = true }
        case .end:
            guard let head else { return }
            self.head = nil
            deadline?.cancel()
            deadline = nil
            let (status, text, contentType, added) = bodyTooLarge
                ? (HTTPResponseStatus.payloadTooLarge, "admin request bodies are at most \(Self.maxBody) bytes\n", "text/plain; charset=utf-8", nil)
                : AdminServer.answer(method: head.method, uri: head.uri, body: String(buffer: body), balancer: balancer, metrics: metrics)
            if head.method != .GET { logger.notice("admin \(head.method) \(head.uri) → \(status.code)") }
            if let added {
                // Answered once the first health check (bounded like every probe) says whether it joined.
                let limit = NIODeadline.now() + .milliseconds(Int64(balancer.healthConfiguration.timeout * 2_000) + 500)
                awaitFirstCheck(of: added, until: limit, context: context) { outcome in
                    self.write(status, text + outcome, contentType, for: head, context: context)
                }
            } else {
                write(status, text, contentType, for: head, context: context)
            }
        }
    }

    private func awaitFirstCheck(of id: String, until limit: NIODeadline, context: ChannelHandlerContext,
                                 then answer: @escaping (String) -> Void) {
        if let outcome = AdminServer.firstCheckOutcome(of: id, balancer: balancer, waited: NIODeadline.now() >= limit) {
            answer(outcome)
            return
        }
        let loopBound = NIOLoopBound((self, context, answer), eventLoop: context.eventLoop)
        context.eventLoop.scheduleTask(in: .milliseconds(5)) {
            let (handler, context, answer) = loopBound.value
            handler.awaitFirstCheck(of: id, until: limit, context: context, then: answer)
        }
    }

    private func write(_ status: HTTPResponseStatus, _ text: String, _ contentType: String, for head: HTTPRequestHead,
                       context: ChannelHandlerContext) {
        var buffer = context.channel.allocator.buffer(capacity: text.utf8.count)
        buffer.writeString(text)
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: contentType)
        headers.add(name: "content-length", value: String(buffer.readableBytes))
        if status == .methodNotAllowed,
           let allowed = AdminServer.allowedMethods(AdminServer.pathSegments(String(RequestKeyExtractor.path(of: head.uri)))) {
            headers.add(name: "allow", value: allowed.map { "\($0)" }.joined(separator: ", "))
        }
        let keepAlive = head.isKeepAlive && !bodyTooLarge
        if !keepAlive { headers.add(name: "connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
            if keepAlive { self.armDeadline(context: context) } else { context.close(promise: nil) }
        }
    }
}
