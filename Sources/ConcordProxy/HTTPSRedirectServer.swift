import ConcordNetworking
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// Where `httpRedirect` listens and where it sends clients.
public struct HTTPRedirectConfiguration: Sendable, Hashable, Codable {
    /// The plain-HTTP address, e.g. `0.0.0.0:80`.
    public var listen: HostPort
    /// The HTTPS port named in `Location`; `nil`: the port the TLS listener is bound to (omitted when 443). Set it
    /// when clients reach the proxy through a port mapping (a container's 443 → 8443).
    public var httpsPort: Int?

    public init(listen: HostPort, httpsPort: Int? = nil) {
        self.listen = listen
        self.httpsPort = httpsPort
    }

    private enum CodingKeys: String, CodingKey, CaseIterable { case listen, httpsPort }

    public init(from decoder: any Decoder) throws {
        try SettingsDecoding.rejectUnknownKeys(in: decoder, known: CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(listen: try c.decode(HostPort.self, forKey: .listen), httpsPort: try c.decodeIfPresent(Int.self, forKey: .httpsPort))
    }
}

/// The plain-HTTP listener beside a TLS proxy (`--http-redirect`): every request is answered `308 Permanent
/// Redirect` to the same host and target over HTTPS, and the connection closes. It exists for sessions: a
/// session cookie marked `Secure` is not sent over plain HTTP, so a user who types `http://…` would look logged
/// out; the redirect brings them to the scheme their cookie belongs to. 308 (not 301) keeps a POST a POST.
/// Each connection is closed after its response, or after the header read timeout if no request completes.
enum HTTPSRedirectServer {
    static func bind(to address: SocketAddress, httpsPort: Int, group: any EventLoopGroup, runtime: NIOLockedValueBox<ProxyRuntime>) async throws -> any Channel {
        try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer(AcceptPauseHandler.installer(alarm: runtime.withLockedValue { $0.balancer.localResources }))
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let runtime = runtime.withLockedValue { $0 }
                    guard runtime.admitConnection(channel) else {
                        channel.close(promise: nil)
                        return
                    }
                    // A load balancer in front sends its PROXY header to this port too; the redirect needs no address.
                    try ProxyProtocolReceiver.setUp(channel, runtime: runtime) { channel, _ in
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                        try channel.pipeline.syncOperations.addHandler(RedirectHandler(
                            httpsPort: httpsPort, timeout: TimeAmount(seconds: runtime.configuration.limits.headerReadTimeout),
                            metrics: runtime.metrics))
                    }
                }
            }
            .bind(to: address).get()
    }

    /// `https://HOST[:PORT]TARGET` for a request's `Host` field and origin-form target; `nil` when either is not
    /// usable (no or malformed Host, a target that is not a path), which is answered 400.
    static func location(host field: String?, target: String, httpsPort: Int) -> String? {
        guard let field, let host = hostName(field), target.hasPrefix("/") else { return nil }
        // The target came through NIO's parser (no CR, LF or spaces); anything else non-printable is refused.
        guard target.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { return nil }
        return "https://\(host)\(httpsPort == 443 ? "" : ":\(httpsPort)")\(target)"
    }

    /// The host part of a `Host` field (`example.com`, `example.com:80`, `[::1]:80`, `10.0.0.1`), port dropped;
    /// `nil` unless it is a DNS name, an IPv4 address or a bracketed IPv6 address.
    static func hostName(_ field: String) -> String? {
        let text = field.trimmingWhitespace()
        guard !text.isEmpty, text.utf8.count <= 255 else { return nil }
        var host: Substring
        var rest: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            host = text[...close]
            rest = text[text.index(after: close)...]
            let inside = host.dropFirst().dropLast()
            guard !inside.isEmpty, inside.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) else { return nil }
        } else {
            let colon = text.firstIndex(of: ":") ?? text.endIndex
            host = text[..<colon]
            rest = text[colon...]
            guard !host.isEmpty, host.allSatisfy({ ($0.isASCII && ($0.isLetter || $0.isNumber)) || $0 == "-" || $0 == "." }) else {
                return nil
            }
        }
        if !rest.isEmpty {
            guard rest.first == ":", rest.count > 1, rest.dropFirst().allSatisfy(\.isNumber) else { return nil }
        }
        return String(host)
    }
}

/// Answers the first request of its connection, then closes; closes after `timeout` if none completes.
private final class RedirectHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let httpsPort: Int
    private let timeout: TimeAmount
    private let metrics: ProxyMetrics
    private var timer: Scheduled<Void>?
    private var answered = false

    init(httpsPort: Int, timeout: TimeAmount, metrics: ProxyMetrics) {
        self.httpsPort = httpsPort
        self.timeout = timeout
        self.metrics = metrics
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        timer = context.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(let head) = unwrapInboundIn(data), !answered else { return }
        answered = true
        var headers = HTTPHeaders([("content-length", "0"), ("connection", "close")])
        let status: HTTPResponseStatus
        if let location = HTTPSRedirectServer.location(host: head.headers.first(name: "host"), target: head.uri, httpsPort: httpsPort) {
            status = .permanentRedirect
            headers.add(name: "location", value: location)
            metrics.httpsRedirects.increment()
        } else {
            status = .badRequest
        }
        let response = HTTPResponseHead(version: .http1_1, status: status, headers: headers)
        context.write(wrapOutboundOut(.head(response)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
    }
}
