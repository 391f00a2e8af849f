import NIOCore
import NIOHTTP1
import NIOPosix

/// One keep-alive HTTP/1.1 client connection from a chosen loopback source address, used by one virtual user
/// at a time: one request in flight, each bounded by a timeout (on timeout the connection is closed).
public struct LabHTTPConnection: Sendable {
    let channel: any Channel

    /// Connects to `host:port` from `sourceAddress` (any 127.x.y.z works on Linux without configuration, which
    /// is what lets source-address hashing spread users on one machine).
    public static func connect(
        host: String = "127.0.0.1",
        port: Int,
        sourceAddress: String?,
        timeout: TimeAmount,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> LabHTTPConnection {
        var bootstrap = ClientBootstrap(group: group)
            .connectTimeout(timeout)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(LabHTTPExchangeHandler())
                }
            }
        if let sourceAddress {
            bootstrap = bootstrap.bind(to: try SocketAddress(ipAddress: sourceAddress, port: 0))
        }
        do {
            return LabHTTPConnection(channel: try await bootstrap.connect(host: host, port: port).get())
        } catch {
            throw LabError.http("connect to \(host):\(port) failed: \(error)")
        }
    }

    public var isActive: Bool { channel.isActive }

    /// Sends one request and waits for its whole response (or the timeout, which closes the connection).
    public func send(
        method: HTTPMethod,
        path: String,
        headers: HTTPHeaders = [:],
        body: String? = nil,
        timeout: TimeAmount
    ) async throws -> LabHTTPResponse {
        var head = HTTPRequestHead(version: .http1_1, method: method, uri: path, headers: headers)
        head.headers.replaceOrAdd(name: "host", value: "127.0.0.1")
        var bodyBuffer: ByteBuffer?
        if let body {
            bodyBuffer = ByteBuffer(string: body)
            head.headers.replaceOrAdd(name: "content-length", value: "\(body.utf8.count)")
            if head.headers["content-type"].isEmpty {
                head.headers.add(name: "content-type", value: "application/x-www-form-urlencoded")
            }
        } else if method == .POST {
            head.headers.replaceOrAdd(name: "content-length", value: "0")
        }
        let promise = channel.eventLoop.makePromise(of: LabHTTPResponse.self)
        let exchange = LabHTTPExchangeHandler.Exchange(head: head, body: bodyBuffer, promise: promise, timeout: timeout)
        // A write that fails sent no request (the connection closed under it, often between the caller's
        // `isActive` and here): that is a close before any response, which a caller may resend on a reused
        // connection, as a browser does.
        channel.writeAndFlush(exchange).whenFailure { error in
            promise.fail(LabError.closedBeforeResponse("\(method) \(path) not sent: \(error)"))
        }
        do {
            return try await withTaskCancellationHandler {
                try await promise.futureResult.get()
            } onCancel: {
                channel.close(promise: nil)
            }
        } catch let error as LabError {
            throw error
        } catch {
            throw LabError.http("\(method) \(path): \(error)")
        }
    }

    public func close() async {
        try? await channel.close()
    }
}

/// Pairs each written request with the response that comes back, fails it on timeout or when the connection
/// closes. Runs only on its channel's event loop.
final class LabHTTPExchangeHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = Exchange
    typealias OutboundOut = HTTPClientRequestPart

    struct Exchange: Sendable {
        var head: HTTPRequestHead
        var body: ByteBuffer?
        var promise: EventLoopPromise<LabHTTPResponse>
        var timeout: TimeAmount
    }

    private struct Pending {
        var promise: EventLoopPromise<LabHTTPResponse>
        var timer: Scheduled<Void>
    }

    private var pending = CircularBuffer<Pending>()
    private var head: HTTPResponseHead?
    private var body = ByteBuffer()

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let exchange = unwrapOutboundIn(data)
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        let timer = context.eventLoop.scheduleTask(in: exchange.timeout) {
            exchange.promise.fail(LabError.http("\(exchange.head.method) \(exchange.head.uri) timed out"))
            loopBound.value.close(promise: nil)
        }
        pending.append(Pending(promise: exchange.promise, timer: timer))
        context.write(wrapOutboundOut(.head(exchange.head)), promise: nil)
        if let body = exchange.body {
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        }
        context.write(wrapOutboundOut(.end(nil)), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let responseHead):
            head = responseHead
            body.clear()
        case .body(var chunk):
            body.writeBuffer(&chunk)
        case .end:
            guard let responseHead = head, !pending.isEmpty else { return }
            let done = pending.removeFirst()
            done.timer.cancel()
            head = nil
            done.promise.succeed(LabHTTPResponse(head: responseHead, body: body))
            if !responseHead.isKeepAlive { context.close(promise: nil) }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        failAll(head == nil ? LabError.closedBeforeResponse("\(error)") : LabError.http("\(error)"))
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(head == nil ? LabError.closedBeforeResponse("connection closed") : LabError.http("connection closed in the response"))
        context.fireChannelInactive()
    }

    private func failAll(_ error: LabError) {
        while let next = pending.popFirst() {
            next.timer.cancel()
            next.promise.fail(error)
        }
    }
}
