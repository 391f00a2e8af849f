import NIOCore
import NIOEmbedded
import NIOHTTP1

/// On one HTTP/2 stream, between NIOHTTP2's HTTP/1-style codec (`HTTP2FramePayloadToHTTP1ServerCodec`) and
/// ``HTTPProxyHandler``, which frames requests and writes responses as HTTP/1.1 bytes: the stream's request goes
/// in as HTTP/1.1 bytes and the bytes written back come out as response parts. So HTTP/2 clients get every L7
/// behaviour — keys, stickiness, retries, limits, forwarding fields, the access log — from the one handler that
/// serves HTTP/1.1, and the backends keep speaking HTTP/1.1 over the same pools.
///
/// The two translations are NIO's own HTTP/1 encoder and decoder, run on an `EmbeddedChannel` owned by this
/// handler (same thread: the stream's event loop): the encoder chunk-frames a body of unknown length, and the
/// decoder, which observes the request head, knows a response to `HEAD` has no body and removes chunk framing.
final class HTTP2StreamBytesBridge: ChannelDuplexHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = HTTPServerResponsePart

    private let codec: EmbeddedChannel
    private var responseEnded = false

    init() throws {
        codec = EmbeddedChannel()
        // Outbound writes pass the decoder first (it notes the request's method), then the encoder makes bytes.
        try codec.pipeline.syncOperations.addHandler(HTTPRequestEncoder())
        try codec.pipeline.syncOperations.addHandler(ByteToMessageHandler(HTTPResponseDecoder(leftOverBytesStrategy: .dropBytes)))
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        _ = try? codec.finish(acceptAlreadyClosed: true)
    }

    // MARK: Request: HTTP/2 → HTTP/1.1 bytes

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part: HTTPClientRequestPart
        switch unwrapInboundIn(data) {
        case .head(var head):
            head.version = .http1_1
            Self.joinCookieFields(&head.headers)
            part = .head(head)
        case .body(let bytes):
            part = .body(.byteBuffer(bytes))
        case .end(let trailers):
            part = .end(trailers)
        }
        do {
            try codec.writeOutbound(part)
            while let bytes = try codec.readOutbound(as: IOData.self) {
                guard case .byteBuffer(let buffer) = bytes else { continue }
                context.fireChannelRead(wrapInboundOut(buffer))
            }
        } catch {
            context.fireErrorCaught(error)
        }
    }

    /// HTTP/2 may send each cookie as its own field (RFC 9113 §8.2.3); HTTP/1.1 wants one `Cookie` line.
    static func joinCookieFields(_ headers: inout HTTPHeaders) {
        let cookies = headers["cookie"]
        guard cookies.count > 1 else { return }
        headers.replaceOrAdd(name: "cookie", value: cookies.joined(separator: "; "))
    }

    // MARK: Response: HTTP/1.1 bytes → HTTP/2

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        do {
            try codec.writeInbound(unwrapOutboundIn(data))
        } catch {
            promise?.fail(error)
            context.fireErrorCaught(error)
            return
        }
        forwardResponseParts(context: context, promise: promise)
    }

    /// A response without length or chunks ends when the proxy closes: the decoder learns of the end first, so
    /// the stream ends cleanly (END_STREAM) instead of being reset.
    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        if mode == .all, !responseEnded {
            codec.pipeline.fireChannelInactive()
            forwardResponseParts(context: context, promise: nil)
            context.flush()
        }
        context.close(mode: mode, promise: promise)
    }

    private func forwardResponseParts(context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) {
        var parts: [HTTPServerResponsePart] = []
        while let part = try? codec.readInbound(as: HTTPClientResponsePart.self) {
            switch part {
            case .head(let head): parts.append(.head(head))
            case .body(let bytes): parts.append(.body(.byteBuffer(bytes)))
            case .end(let trailers):
                responseEnded = true
                parts.append(.end(trailers))
            }
        }
        guard let last = parts.indices.last else {
            promise?.succeed(())
            return
        }
        for index in parts.indices {
            context.write(wrapOutboundOut(parts[index]), promise: index == last ? promise : nil)
        }
    }
}
