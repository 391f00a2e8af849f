import NIOCore
import NIOHTTP1

/// A backend's response head as the bytes it sent, with only what the proxy needs from it: the status, how the
/// body is framed, whether the backend keeps the connection, and whether hop-by-hop fields are present. Without
/// hop-by-hop fields (the common case) the bytes go to the client as they are; otherwise ``rewritten(version:adding:allocator:)``
/// drops them. Parsing is strict: anything that two HTTP parsers could read differently is an error, not a guess.
struct BackendResponseHead {
    enum Framing: Equatable {
        /// No body: 1xx, 204, 304, a response to HEAD, or `Content-Length: 0`.
        case none
        case contentLength(Int)
        /// `Transfer-Encoding` whose last coding is `chunked`: the body ends with the last chunk and trailers.
        case chunked
        /// Neither length nor chunked: the body ends when the backend closes the connection.
        case untilClose
    }

    /// The status line and the field lines up to and including the blank line.
    let bytes: ByteBuffer
    let status: Int
    /// `HTTP/1.1` (otherwise `HTTP/1.0`).
    let isHTTP11: Bool
    let framing: Framing
    /// Whether the backend keeps the connection open after this response.
    let keepAlive: Bool
    /// Whether a hop-by-hop field is present: Connection, Keep-Alive, Proxy-Connection, TE, Trailer or Upgrade (a
    /// field that Connection names is hop-by-hop too, but only counts when Connection is present, which this covers).
    let hasHopByHopFields: Bool
    /// Whether the head can go as it is to a client whose HTTP/1.1 connection stays open: no hop-by-hop field
    /// except `Connection: keep-alive`, which nginx sends on every such response and which is as true of the
    /// client connection as of the backend one.
    let suitsKeptConnection: Bool
    /// A 1xx or 204 with `Content-Length` or `Transfer-Encoding`, which such a response must not carry (RFC 9110
    /// §8.6, RFC 9112 §6.1): the client gets it without them (as from nginx), since a client that believed them
    /// would wait for a body that never comes.
    let dropsFramingFields: Bool

    /// Parses `bytes`, a complete head (ending with the blank line), as the response to a request that was a
    /// HEAD request or not, HTTP/1.0 or 1.1, and asked to switch protocols or not (only then is 101 an answer).
    init(parsing bytes: ByteBuffer, requestIsHEAD: Bool, requestIsHTTP10: Bool, requestAsksUpgrade: Bool = false,
         maxHeaderCount: Int) throws(HTTPResponseFramerError) {
        let fields = try bytes.withUnsafeReadableBytes { Fields.scan($0, maxHeaderCount: maxHeaderCount) }.get()
        if fields.status == 101 && !requestAsksUpgrade { throw .switchingProtocols }
        let codings = fields.transferCodings
        // (1xx and 204 have no body whatever their fields say, RFC 9112 §6.3 rule 1: their framing fields are
        // dropped, below, and cannot be ambiguous.)
        let mustNotFrame = fields.status < 200 || fields.status == 204
        if codings.isPresent && !mustNotFrame {
            // RFC 9112 §6.1, §6.3: Transfer-Encoding with Content-Length, or in an HTTP/1.0 message, is how
            // responses get split; so is `chunked` applied twice or not last, or a list that is not plain.
            if fields.contentLength != nil || !fields.isHTTP11 || requestIsHTTP10 || codings.chunkedNotLast || codings.count == 0
                || !codings.isPlainList {
                throw .ambiguousFraming
            }
        }
        let framing: Framing
        if fields.status < 200 || fields.status == 204 || fields.status == 304 || requestIsHEAD {
            framing = .none
        } else if codings.isPresent {
            framing = codings.chunkedLast ? .chunked : .untilClose
        } else if let length = fields.contentLength {
            framing = length == 0 ? .none : .contentLength(length)
        } else {
            framing = .untilClose
        }
        self.bytes = bytes
        self.status = fields.status
        self.isHTTP11 = fields.isHTTP11
        self.framing = framing
        let dropsFramingFields = mustNotFrame && (fields.contentLength != nil || codings.isPresent)
        // A backend that framed a 1xx or 204 may send the body it announced: read as the start of the next response
        // on the connection, so the connection is not used again.
        self.keepAlive = fields.status != 101 && framing != .untilClose && !fields.connectionClose
            && (fields.isHTTP11 || fields.connectionKeepAlive) && !dropsFramingFields
        self.hasHopByHopFields = fields.hopByHop
        self.dropsFramingFields = dropsFramingFields
        self.suitsKeptConnection = fields.isHTTP11 && !fields.hopByHopBesidesKeepAlive && !dropsFramingFields
    }

    /// The head as the client gets it: the status line with `version`, hop-by-hop fields left out (the fixed list
    /// and every field Connection names, except the framing fields — which go too when ``dropsFramingFields``), and
    /// `extraFields` added at the end.
    func rewritten(version: HTTPVersion, adding extraFields: [(name: String, value: String)], allocator: ByteBufferAllocator) -> ByteBuffer {
        var out = allocator.buffer(capacity: bytes.readableBytes + 64)
        out.writeString(version == .http1_0 ? "HTTP/1.0" : "HTTP/1.1")
        bytes.withUnsafeReadableBytes { p in
            let statusLineEnd = HTTPSyntax.lineEnd(p, from: 0)
            out.writeBytes(UnsafeRawBufferPointer(rebasing: p[8..<statusLineEnd]))
            let firstField = statusLineEnd
            let named = hasHopByHopFields ? HTTPSyntax.fieldsNamedByConnection(p, from: firstField) : []
            HTTPSyntax.forEachField(p, from: firstField) { name, _, line in
                if HTTPSyntax.isFixedHopByHop(p, name) { return }
                if dropsFramingFields && (HTTPSyntax.equalsIgnoringCase(p, name, "content-length")
                    || HTTPSyntax.equalsIgnoringCase(p, name, "transfer-encoding")) { return }
                if named.contains(where: { HTTPSyntax.equalsIgnoringCase(p, name, p, $0) }) { return }
                out.writeBytes(UnsafeRawBufferPointer(rebasing: p[line]))
            }
        }
        for field in extraFields {
            out.writeString(field.name)
            out.writeString(": ")
            out.writeString(field.value)
            out.writeString("\r\n")
        }
        out.writeString("\r\n")
        return out
    }

    /// The head as it came, with `field` added at the end: for a 101, whose `Upgrade` and `Connection` fields are
    /// as true of the client's connection as of the backend's (the two become one tunnel).
    func adding(_ field: (name: String, value: String), allocator: ByteBufferAllocator) -> ByteBuffer {
        var out = allocator.buffer(capacity: bytes.readableBytes + field.name.utf8.count + field.value.utf8.count + 4)
        out.writeImmutableBuffer(bytes.getSlice(at: bytes.readerIndex, length: bytes.readableBytes - 2)!)
        out.writeString("\(field.name): \(field.value)\r\n\r\n")
        return out
    }

    // MARK: Parsing

    /// What one pass over the head finds.
    private struct Fields {
        var status = 0
        var isHTTP11 = false
        var contentLength: Int?
        var transferCodings = HTTPSyntax.TransferCodings()
        var connectionClose = false
        var connectionKeepAlive = false
        var hopByHop = false
        /// A hop-by-hop field other than Connection, or a Connection option other than keep-alive.
        var hopByHopBesidesKeepAlive = false

        static func scan(_ p: UnsafeRawBufferPointer, maxHeaderCount: Int) -> Result<Fields, HTTPResponseFramerError> {
            var fields = Fields()
            let n = p.count
            // Status line: HTTP/1.x SP 3DIGIT [SP reason] CRLF (the reason may be empty or, leniently, missing).
            guard n >= 14, p[0] == UInt8(ascii: "H"), p[1] == UInt8(ascii: "T"), p[2] == UInt8(ascii: "T"), p[3] == UInt8(ascii: "P"),
                  p[4] == UInt8(ascii: "/"), p[5] == UInt8(ascii: "1"), p[6] == UInt8(ascii: "."),
                  p[7] == UInt8(ascii: "0") || p[7] == UInt8(ascii: "1"), p[8] == HTTPSyntax.space,
                  (UInt8(ascii: "1")...UInt8(ascii: "5")).contains(p[9]),
                  (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(p[10]),
                  (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(p[11])
            else { return .failure(.malformedStatusLine) }
            fields.isHTTP11 = p[7] == UInt8(ascii: "1")
            fields.status = Int(p[9] &- 48) * 100 + Int(p[10] &- 48) * 10 + Int(p[11] &- 48)
            var i = 12
            if p[i] == HTTPSyntax.space {
                i += 1
                while i < n && p[i] != HTTPSyntax.cr {
                    guard HTTPSyntax.isFieldContent(p[i]) else { return .failure(.malformedStatusLine) }
                    i += 1
                }
            }
            guard i + 1 < n, p[i] == HTTPSyntax.cr, p[i + 1] == HTTPSyntax.lf else { return .failure(.malformedStatusLine) }
            i += 2
            let failure = HTTPSyntax.scanFields(p, from: i, maxCount: maxHeaderCount) { fields.note(p, name: $0, value: $1) }
            return failure.map { .failure($0) } ?? .success(fields)
        }

        /// Records what a field means for framing and hop-by-hop handling.
        private mutating func note(_ p: UnsafeRawBufferPointer, name: Range<Int>, value: Range<Int>) -> HTTPResponseFramerError? {
            switch name.count {
            case 14 where HTTPSyntax.equalsIgnoringCase(p, name, "content-length"):
                // One field, digits only: "5, 5" and repeated fields are rejected rather than reconciled.
                guard contentLength == nil, let length = HTTPSyntax.decimal(p, value) else { return .invalidContentLength }
                contentLength = length
            case 17 where HTTPSyntax.equalsIgnoringCase(p, name, "transfer-encoding"):
                transferCodings.add(p, value)
            case 10 where HTTPSyntax.equalsIgnoringCase(p, name, "connection"):
                hopByHop = true
                HTTPSyntax.forEachListElement(p, value) { option in
                    if HTTPSyntax.equalsIgnoringCase(p, option, "keep-alive") {
                        connectionKeepAlive = true
                    } else {
                        if HTTPSyntax.equalsIgnoringCase(p, option, "close") { connectionClose = true }
                        hopByHopBesidesKeepAlive = true
                    }
                }
            default:
                if HTTPSyntax.isFixedHopByHop(p, name) {
                    hopByHop = true
                    hopByHopBesidesKeepAlive = true
                }
            }
            return nil
        }
    }
}
