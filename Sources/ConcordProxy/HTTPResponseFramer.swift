import NIOCore

/// Finds where each response on a backend connection begins and ends, so the proxy forwards the response's bytes
/// as they came instead of decoding them into `HTTPClientResponsePart`s and encoding them again (that
/// parse-and-reserialise, with its header strings and reference counting, was most of the proxy's own L7 cost).
/// It parses only what framing and the hop-by-hop rules need (``BackendResponseHead``) and follows a chunked
/// body's framing without changing it (``ChunkedBodyScanner``).
///
/// A value-type state machine that never keeps bytes: the caller feeds what arrived with ``next(_:)`` and keeps
/// what was not consumed — only ever the start of a response head — to put in front of the next read.
struct HTTPResponseFramer {
    /// Bounds on what a backend may send (→ 502; the body is streamed, so only the head is bounded).
    typealias Limits = HTTPHeadLimits

    enum Part {
        /// A final response's head (1xx interim responses are consumed here unless ``reportsInterim`` is set).
        case head(BackendResponseHead)
        /// An interim (1xx) response's head, with ``reportsInterim`` only: the final head still follows.
        case interim(BackendResponseHead)
        /// A final response's head and its whole fixed-length body, arrived together: `bytes` holds both as one
        /// slice (the head's bytes first), so a head that goes out unchanged goes out with its body in one write —
        /// the usual small response. `.end` follows.
        case headAndBody(BackendResponseHead, bytes: ByteBuffer)
        /// Body bytes exactly as they came: for a chunked body, its chunk framing and trailers included.
        case body(ByteBuffer)
        case end
        /// `101 Switching Protocols` to a request that asked for it: the head to forward. Every byte after it — what
        /// is left in the buffer and everything read later — is the new protocol's, no longer HTTP; the framer
        /// reads nothing more.
        case switched(BackendResponseHead)
    }

    private enum State {
        /// No request is outstanding: a byte now means the connection is out of sync.
        case awaitingRequest
        /// A request went out; its response head is arriving. The first `scanned` bytes held no head end.
        case head(scanned: Int)
        case fixedLength(remaining: Int)
        case chunked(ChunkedBodyScanner)
        case untilClose
        /// The body is complete; the next step reports `.end`.
        case ending
        /// The backend broke the framing: nothing more on this connection is understood.
        case failed
        /// The connection switched protocols: its bytes are not HTTP any more.
        case switched
    }

    let limits: Limits
    private var state = State.awaitingRequest
    private var requestIsHEAD = false
    private var requestIsHTTP10 = false
    private var requestAsksUpgrade = false

    /// Whether interim (1xx) heads are reported (``Part/interim(_:)``) instead of dropped: the HTTP/2 bridge relays
    /// the proxy's own `100 Continue`; towards a backend connection they are dropped.
    let reportsInterim: Bool

    init(limits: Limits, reportsInterim: Bool = false) {
        self.limits = limits
        self.reportsInterim = reportsInterim
    }

    /// Whether the response in progress is complete (or none was asked for).
    var isAwaitingRequest: Bool {
        if case .awaitingRequest = state { return true }
        return false
    }

    /// A request went out on the connection; its response comes next. A response to HEAD has no body whatever
    /// its head says, a response to an HTTP/1.0 request must not be chunked, and only a request that asked to
    /// switch protocols may be answered 101.
    mutating func requestSent(isHEAD: Bool, isHTTP10: Bool, asksUpgrade: Bool = false) {
        requestIsHEAD = isHEAD
        requestIsHTTP10 = isHTTP10
        requestAsksUpgrade = asksUpgrade
        state = .head(scanned: 0)
    }

    /// The next part of the response at the front of `buffer`, whose bytes it consumes; or `nil` when `buffer`
    /// holds no complete part. What is left in `buffer` then is the start of a response head, to be put in front
    /// of the bytes that arrive next.
    mutating func next(_ buffer: inout ByteBuffer) throws(HTTPResponseFramerError) -> Part? {
        do throws(HTTPResponseFramerError) {
            return try step(&buffer)
        } catch {
            state = .failed
            throw error
        }
    }

    /// The backend closed the connection. `.end` when that ends the response (a body delimited by the close);
    /// otherwise `nil`, and the response, if one was due, is incomplete.
    mutating func inputClosed() -> Part? {
        switch state {
        case .untilClose, .ending:
            state = .awaitingRequest
            return .end
        default:
            return nil
        }
    }

    private mutating func step(_ buffer: inout ByteBuffer) throws(HTTPResponseFramerError) -> Part? {
        while true {
            switch state {
            case .awaitingRequest, .failed:
                if buffer.readableBytes > 0 { throw .unexpectedBytes }
                return nil
            case .switched:
                return nil
            case .head(let scanned):
                guard let length = try headLength(buffer, scanned: scanned) else { return nil }
                let head = try BackendResponseHead(
                    parsing: buffer.getSlice(at: buffer.readerIndex, length: length)!, requestIsHEAD: requestIsHEAD,
                    requestIsHTTP10: requestIsHTTP10, requestAsksUpgrade: requestAsksUpgrade, maxHeaderCount: limits.maxHeaderCount)
                if head.status == 101 {
                    buffer.moveReaderIndex(forwardBy: length)
                    state = .switched
                    return .switched(head)
                }
                if head.status < 200 {
                    // Interim (100 Continue, 103 Early Hints): dropped unless asked for; the final head follows.
                    buffer.moveReaderIndex(forwardBy: length)
                    state = .head(scanned: 0)
                    if reportsInterim { return .interim(head) }
                    continue
                }
                if case .contentLength(let bodyLength) = head.framing, buffer.readableBytes - length >= bodyLength {
                    state = .ending
                    return .headAndBody(head, bytes: buffer.readSlice(length: length + bodyLength)!)
                }
                buffer.moveReaderIndex(forwardBy: length)
                switch head.framing {
                case .none: state = .ending
                case .contentLength(let length): state = .fixedLength(remaining: length)
                case .chunked: state = .chunked(ChunkedBodyScanner(maxLineBytes: limits.maxHeadBytes))
                case .untilClose: state = .untilClose
                }
                return .head(head)
            case .fixedLength(let remaining):
                let count = min(remaining, buffer.readableBytes)
                guard count > 0 else { return nil }
                state = count == remaining ? .ending : .fixedLength(remaining: remaining - count)
                return .body(buffer.readSlice(length: count)!)
            case .chunked(var scanner):
                guard buffer.readableBytes > 0 else { return nil }
                let count = try buffer.withUnsafeReadableBytes { scanner.scan($0) }.get()
                state = scanner.isComplete ? .ending : .chunked(scanner)
                return .body(buffer.readSlice(length: count)!)
            case .untilClose:
                guard buffer.readableBytes > 0 else { return nil }
                return .body(buffer.readSlice(length: buffer.readableBytes)!)
            case .ending:
                state = .awaitingRequest
                return .end
            }
        }
    }

    /// The length of the head at the front of `buffer`, or `nil` (remembering how far it was searched) if it has
    /// not all arrived.
    private mutating func headLength(_ buffer: ByteBuffer, scanned: Int) throws(HTTPResponseFramerError) -> Int? {
        let length = try HTTPSyntax.headLength(buffer, from: scanned, limit: limits.maxHeadBytes, failing: HTTPResponseFramerError.self)
        if length == nil { state = .head(scanned: buffer.readableBytes) }
        return length
    }
}
