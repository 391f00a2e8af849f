import NIOCore

/// Finds where each request on a client connection begins and ends, so the proxy forwards the request's bytes as
/// they came instead of decoding them into `HTTPServerRequestPart`s (a `String` per field name and value) and
/// encoding them again. It parses only what framing, routing and forwarding need (``ClientRequestHead``) and
/// follows a chunked body's framing without changing it (``ChunkedBodyScanner``). The mirror of
/// ``HTTPResponseFramer`` on the client side.
///
/// A value-type state machine that never keeps bytes: the caller feeds what arrived with ``next(_:)`` and keeps
/// what was not consumed — only ever the start of a request head — to put in front of the next read. Requests
/// follow one another on a connection (pipelining) without waiting for responses: framing a request does not
/// depend on its response.
struct HTTPRequestFramer {
    /// Bounds on what a client may send (→ 431). The body is streamed and bounded by the proxy, so only the head
    /// is bounded here.
    typealias Limits = HTTPHeadLimits

    enum Part {
        case head(ClientRequestHead)
        /// Body bytes exactly as they came — for a chunked body, its chunk framing and trailers included — and how
        /// many payload bytes they add, which is what the body limit counts: a chunk's whole size when its size line
        /// ends (so an oversized chunk is refused at once), the bytes themselves for a Content-Length body.
        case body(ByteBuffer, payloadBytes: Int)
        case end
    }

    private enum State {
        /// A request head is arriving. The first `scanned` bytes held no head end.
        case head(scanned: Int)
        case fixedLength(remaining: Int)
        case chunked(ChunkedBodyScanner)
        /// The body is complete; the next step reports `.end`.
        case ending
        /// The client broke the framing: nothing more on this connection is understood.
        case failed
    }

    let limits: Limits
    private var state = State.head(scanned: 0)

    init(limits: Limits) { self.limits = limits }

    /// The next part of the request at the front of `buffer`, whose bytes it consumes; or `nil` when `buffer`
    /// holds no complete part. What is left in `buffer` then is the start of a request head, to be put in front
    /// of the bytes that arrive next.
    mutating func next(_ buffer: inout ByteBuffer) throws(HTTPRequestFramerError) -> Part? {
        do throws(HTTPRequestFramerError) {
            return try step(&buffer)
        } catch {
            state = .failed
            throw error
        }
    }

    private mutating func step(_ buffer: inout ByteBuffer) throws(HTTPRequestFramerError) -> Part? {
        switch state {
        case .failed:
            buffer.moveReaderIndex(forwardBy: buffer.readableBytes)
            return nil
        case .head(let scanned):
            if scanned == 0 && !Self.skipEmptyLines(&buffer) { return nil }
            guard let length = try headLength(buffer, scanned: scanned) else { return nil }
            let head = try ClientRequestHead(parsing: buffer.readSlice(length: length)!, maxHeaderCount: limits.maxHeaderCount)
            switch head.framing {
            case .none: state = .ending
            case .contentLength(let length): state = .fixedLength(remaining: length)
            case .chunked: state = .chunked(ChunkedBodyScanner(maxLineBytes: limits.maxHeadBytes, refusesHeadOnlyTrailers: true))
            }
            return .head(head)
        case .fixedLength(let remaining):
            let count = min(remaining, buffer.readableBytes)
            guard count > 0 else { return nil }
            state = count == remaining ? .ending : .fixedLength(remaining: remaining - count)
            return .body(buffer.readSlice(length: count)!, payloadBytes: count)
        case .chunked(var scanner):
            guard buffer.readableBytes > 0 else { return nil }
            let announcedBefore = scanner.announcedBytes
            guard case .success(let count) = buffer.withUnsafeReadableBytes({ scanner.scan($0) }) else { throw .malformedChunk }
            state = scanner.isComplete ? .ending : .chunked(scanner)
            return .body(buffer.readSlice(length: count)!, payloadBytes: scanner.announcedBytes - announcedBefore)
        case .ending:
            state = .head(scanned: 0)
            return .end
        }
    }

    /// Drops the empty lines a client may send before a request line (RFC 9112 §2.2: after a body, some clients
    /// add a CRLF), as NIO's parser did. A bare LF is left for ``headLength(_:scanned:)`` to reject.
    /// - Returns: `false` when all that is left is a lone CR: half an empty line, whose LF is awaited (a request
    ///   line cannot begin with it).
    private static func skipEmptyLines(_ buffer: inout ByteBuffer) -> Bool {
        while buffer.readableBytes >= 2, buffer.getInteger(at: buffer.readerIndex, as: UInt16.self) == 0x0D0A {
            buffer.moveReaderIndex(forwardBy: 2)
        }
        return !(buffer.readableBytes == 1 && buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) == HTTPSyntax.cr)
    }

    /// The length of the head at the front of `buffer`, or `nil` (remembering how far it was searched) if it has
    /// not all arrived.
    private mutating func headLength(_ buffer: ByteBuffer, scanned: Int) throws(HTTPRequestFramerError) -> Int? {
        let length = try HTTPSyntax.headLength(buffer, from: scanned, limit: limits.maxHeadBytes, failing: HTTPRequestFramerError.self)
        if length == nil { state = .head(scanned: buffer.readableBytes) }
        return length
    }
}
