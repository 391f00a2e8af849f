import NIOCore
import NIOHTTP1

/// On one HTTP/2 stream, between NIOHTTP2's HTTP/1-style codec (`HTTP2FramePayloadToHTTP1ServerCodec`) and
/// ``HTTPProxyHandler``, which frames requests and writes responses as HTTP/1.1 bytes: the stream's request goes
/// in as HTTP/1.1 bytes and the bytes written back come out as response parts. So HTTP/2 clients get every L7
/// behaviour — keys, stickiness, retries, limits, forwarding fields, the access log — from the one handler that
/// serves HTTP/1.1, and the backends keep speaking HTTP/1.1 over the same pools.
///
/// Both directions use the proxy's own HTTP/1.1 pieces, no per-stream parser objects: a request head is written
/// out field by field (a body of unknown length chunk-framed, as the codec's `transfer-encoding: chunked` says);
/// response bytes go through ``HTTPResponseFramer`` (which knows a response to `HEAD` has no body and skips 1xx),
/// and a chunked body loses its framing through ``ChunkedBodyScanner`` (its trailers are not passed on).
final class HTTP2StreamBytesBridge: ChannelDuplexHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = HTTPServerResponsePart

    private var requestIsChunked = false
    private var framer: HTTPResponseFramer
    /// Bytes of a response head that has not all been written yet.
    private var pending = ByteBuffer()
    /// While a chunked response body passes: its framing, followed to find the data.
    private var dechunker: ChunkedBodyScanner?
    private var responseEnded = false

    init(limits: HTTPHeadLimits) {
        framer = HTTPResponseFramer(limits: limits)
    }

    // MARK: Request: HTTP/2 → HTTP/1.1 bytes

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var out: ByteBuffer
        switch unwrapInboundIn(data) {
        case .head(var head):
            Self.joinCookieFields(&head.headers)
            requestIsChunked = head.headers[canonicalForm: "transfer-encoding"].contains { $0.lowercased() == "chunked" }
            framer.requestSent(isHEAD: head.method == .HEAD, isHTTP10: false)
            out = context.channel.allocator.buffer(capacity: 256)
            out.writeString(head.method.rawValue)
            out.writeStaticString(" ")
            out.writeString(head.uri)
            out.writeStaticString(" HTTP/1.1\r\n")
            Self.write(head.headers, to: &out)
            out.writeStaticString("\r\n")
        case .body(let bytes):
            guard requestIsChunked else {
                context.fireChannelRead(wrapInboundOut(bytes))
                return
            }
            guard bytes.readableBytes > 0 else { return }  // an empty chunk would end the body
            out = context.channel.allocator.buffer(capacity: bytes.readableBytes + 12)
            out.writeString(String(bytes.readableBytes, radix: 16))
            out.writeStaticString("\r\n")
            out.writeImmutableBuffer(bytes)
            out.writeStaticString("\r\n")
        case .end(let trailers):
            guard requestIsChunked else { return }
            out = context.channel.allocator.buffer(capacity: 5)
            out.writeStaticString("0\r\n")
            if let trailers { Self.write(trailers, to: &out) }
            out.writeStaticString("\r\n")
        }
        context.fireChannelRead(wrapInboundOut(out))
    }

    /// Field lines as HTTP/1.1 writes them. NIOHTTP2 has checked the names and values (RFC 9113 §8.2.1: no CR,
    /// LF or NUL), and ``HTTPProxyHandler``'s framer checks the head again.
    private static func write(_ headers: HTTPHeaders, to out: inout ByteBuffer) {
        for (name, value) in headers {
            out.writeString(name)
            out.writeStaticString(": ")
            out.writeString(value)
            out.writeStaticString("\r\n")
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
        var buffer = unwrapOutboundIn(data)
        if pending.readableBytes > 0 {
            pending.writeBuffer(&buffer)
            swap(&buffer, &pending)
        }
        var parts: [HTTPServerResponsePart] = []
        do {
            while let part = try framer.next(&buffer) { try translate(part, into: &parts) }
        } catch {
            promise?.fail(error)
            context.fireErrorCaught(error)
            return
        }
        pending = buffer
        forward(parts, context: context, promise: promise)
    }

    /// A response without length or chunks ends when the proxy closes: the stream ends cleanly (END_STREAM)
    /// instead of being reset. A body cut short is reset.
    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        if mode == .all, !responseEnded, let end = framer.inputClosed(), case .end = end {
            var parts: [HTTPServerResponsePart] = []
            try? translate(end, into: &parts)
            forward(parts, context: context, promise: nil)
            context.flush()
        }
        context.close(mode: mode, promise: promise)
    }

    private func translate(_ part: HTTPResponseFramer.Part, into parts: inout [HTTPServerResponsePart]) throws {
        switch part {
        case .head(let head):
            parts.append(.head(responseHead(head)))
        case .headAndBody(let head, var bytes):
            parts.append(.head(responseHead(head)))
            bytes.moveReaderIndex(forwardBy: head.bytes.readableBytes)
            if bytes.readableBytes > 0 { parts.append(.body(.byteBuffer(bytes))) }
        case .body(let bytes):
            guard var scanner = dechunker else {
                parts.append(.body(.byteBuffer(bytes)))
                return
            }
            var data: [Range<Int>] = []
            let scanned = bytes.withUnsafeReadableBytes { scanner.scan($0) { data.append($0) } }
            if case .failure(let error) = scanned { throw error }
            dechunker = scanner
            for range in data {
                parts.append(.body(.byteBuffer(bytes.getSlice(at: bytes.readerIndex + range.lowerBound, length: range.count)!)))
            }
        case .end:
            responseEnded = true
            dechunker = nil
            parts.append(.end(nil))
        case .switched:
            // An HTTP/2 request cannot ask to switch protocols, so the framer never reports one.
            throw HTTPResponseFramerError.switchingProtocols
        }
    }

    private func responseHead(_ head: BackendResponseHead) -> HTTPResponseHead {
        if head.framing == .chunked { dechunker = ChunkedBodyScanner(maxLineBytes: framer.limits.maxHeadBytes) }
        var headers = HTTPHeaders()
        head.bytes.withUnsafeReadableBytes { p in
            HTTPSyntax.forEachField(p, from: HTTPSyntax.lineEnd(p, from: 0)) { name, value, _ in
                headers.add(name: String(decoding: UnsafeRawBufferPointer(rebasing: p[name]), as: UTF8.self),
                            value: String(decoding: UnsafeRawBufferPointer(rebasing: p[value]), as: UTF8.self))
            }
        }
        return HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: head.status), headers: headers)
    }

    private func forward(_ parts: [HTTPServerResponsePart], context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) {
        guard let last = parts.indices.last else {
            promise?.succeed(())
            return
        }
        for index in parts.indices {
            context.write(wrapOutboundOut(parts[index]), promise: index == last ? promise : nil)
        }
    }
}
