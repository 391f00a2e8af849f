import Foundation
import NIOCore
import NIOPosix
import NIOConcurrencyHelpers
import NIOSSL

/// A raw TCP client for the tests: sends bytes (optionally in slow pieces), half-closes if asked, and collects
/// everything the server sends until it closes or the time limit passes. Bounded in time always. With `tls` it
/// speaks TLS (SNI `serverName`, `localhost` by default) and the bytes are the plaintext.
enum RawClient {
    struct Response {
        let text: String
        /// The server ended the connection (closed or half-closed it); false when the client's time limit did.
        var closedByPeer = true
        /// The first error the client's pipeline saw (e.g. a failed TLS handshake).
        var error: String?
        var status: Int? {
            let parts = text.split(separator: " ", maxSplits: 2)
            return parts.count >= 2 && parts[0].hasPrefix("HTTP/") ? Int(parts[1]) : nil
        }
        func header(_ name: String) -> String? {
            for line in text.split(separator: "\r\n") {
                guard let colon = line.firstIndex(of: ":") else { continue }
                if line[..<colon].lowercased() == name.lowercased() {
                    return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                }
            }
            return nil
        }
        var body: String {
            guard let range = text.range(of: "\r\n\r\n") else { return "" }
            return String(text[range.upperBound...])
        }
    }

    /// `collected` lets a caller watch the bytes arrive before the connection ends. `plainPrefix`: bytes sent first,
    /// before any TLS handshake (a PROXY protocol header).
    static func exchange(port: Int, _ pieces: [String], pause: Duration = .zero, halfClose: Bool = false,
                         timeout: Duration = .seconds(5), tls: NIOSSLContext? = nil, serverName: String = "localhost",
                         plainPrefix: ByteBuffer? = nil,
                         collected: NIOLockedValueBox<ByteBuffer> = NIOLockedValueBox(ByteBuffer())) async throws -> Response {
        let closed = MultiThreadedEventLoopGroup.singleton.any().makePromise(of: Bool.self)
        let firstError = NIOLockedValueBox<String?>(nil)
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let plainPrefix { try channel.pipeline.syncOperations.addHandler(PlainPrefix(bytes: plainPrefix)) }
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: tls, serverHostname: serverName))
                    }
                    try channel.pipeline.syncOperations.addHandler(Collector(collected: collected, closed: closed, firstError: firstError))
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        for (i, piece) in pieces.enumerated() {
            if i > 0 && pause > .zero { try await Task.sleep(for: pause) }
            try? await channel.writeAndFlush(ByteBuffer(string: piece))
        }
        if halfClose { try? await channel.close(mode: .output) }
        let deadline = channel.eventLoop.scheduleTask(in: .nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000)) {
            closed.succeed(false)
        }
        let closedByPeer = (try? await closed.futureResult.get()) ?? true
        deadline.cancel()
        try? await channel.close()
        return Response(text: collected.withLockedValue { String(buffer: $0) }, closedByPeer: closedByPeer,
                        error: firstError.withLockedValue { $0 })
    }

    /// One HTTP/1.1 request with `Connection: close`.
    static func get(port: Int, path: String = "/", headers: [String: String] = [:], method: String = "GET", body: String = "",
                    tls: NIOSSLContext? = nil) async throws -> Response {
        var request = "\(method) \(path) HTTP/1.1\r\nHost: test\r\nConnection: close\r\n"
        for (name, value) in headers { request += "\(name): \(value)\r\n" }
        if !body.isEmpty || method == "POST" { request += "Content-Length: \(body.utf8.count)\r\n" }
        request += "\r\n" + body
        return try await exchange(port: port, [request], tls: tls)
    }

    /// Writes its bytes when the connection opens, in front of everything the handlers behind it (TLS) send.
    private final class PlainPrefix: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let bytes: ByteBuffer
        init(bytes: ByteBuffer) { self.bytes = bytes }
        func channelActive(context: ChannelHandlerContext) {
            context.writeAndFlush(wrapOutboundOut(bytes), promise: nil)
            context.fireChannelActive()
        }
    }

    private final class Collector: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        let collected: NIOLockedValueBox<ByteBuffer>
        let closed: EventLoopPromise<Bool>
        let firstError: NIOLockedValueBox<String?>
        init(collected: NIOLockedValueBox<ByteBuffer>, closed: EventLoopPromise<Bool>, firstError: NIOLockedValueBox<String?>) {
            self.collected = collected
            self.closed = closed
            self.firstError = firstError
        }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var buffer = unwrapInboundIn(data)
            _ = collected.withLockedValue { $0.writeBuffer(&buffer) }
        }
        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if let event = event as? ChannelEvent, event == .inputClosed { closed.succeed(true) }
        }
        func channelInactive(context: ChannelHandlerContext) { closed.succeed(true) }
        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            firstError.withLockedValue { if $0 == nil { $0 = "\(error)" } }
            context.close(promise: nil)
        }
    }
}
