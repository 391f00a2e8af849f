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

    /// Parses `bytes`, a complete head (ending with the blank line), as the response to a request that was a
    /// HEAD request or not, and HTTP/1.0 or 1.1.
    init(parsing bytes: ByteBuffer, requestIsHEAD: Bool, requestIsHTTP10: Bool, maxHeaderCount: Int) throws(HTTPResponseFramerError) {
        let fields = try bytes.withUnsafeReadableBytes { Fields.scan($0, maxHeaderCount: maxHeaderCount) }.get()
        if fields.status == 101 { throw .switchingProtocols }
        if fields.transferEncoding {
            // RFC 9112 §6.1, §6.3: Transfer-Encoding with Content-Length, or in an HTTP/1.0 message, is how
            // responses get split; so is `chunked` applied twice or not last.
            if fields.contentLength != nil || !fields.isHTTP11 || requestIsHTTP10 || fields.chunkedNotLast || fields.codings == 0 {
                throw .ambiguousFraming
            }
        }
        let framing: Framing
        if fields.status < 200 || fields.status == 204 || fields.status == 304 || requestIsHEAD {
            framing = .none
        } else if fields.transferEncoding {
            framing = fields.chunkedLast ? .chunked : .untilClose
        } else if let length = fields.contentLength {
            framing = length == 0 ? .none : .contentLength(length)
        } else {
            framing = .untilClose
        }
        self.bytes = bytes
        self.status = fields.status
        self.isHTTP11 = fields.isHTTP11
        self.framing = framing
        self.keepAlive = framing != .untilClose && !fields.connectionClose && (fields.isHTTP11 || fields.connectionKeepAlive)
        self.hasHopByHopFields = fields.hopByHop
        self.suitsKeptConnection = fields.isHTTP11 && !fields.hopByHopBesidesKeepAlive
    }

    /// The head as the client gets it: the status line with `version`, hop-by-hop fields left out (the fixed list
    /// and every field Connection names, except the framing fields), and `extraFields` added at the end.
    func rewritten(version: HTTPVersion, adding extraFields: [(name: String, value: String)], allocator: ByteBufferAllocator) -> ByteBuffer {
        var out = allocator.buffer(capacity: bytes.readableBytes + 64)
        out.writeString(version == .http1_0 ? "HTTP/1.0" : "HTTP/1.1")
        bytes.withUnsafeReadableBytes { p in
            let statusLineEnd = Self.lineEnd(p, from: 0)
            out.writeBytes(UnsafeRawBufferPointer(rebasing: p[8..<statusLineEnd]))
            let firstField = statusLineEnd
            var named: [String] = []
            if hasHopByHopFields {
                Self.forEachField(p, from: firstField) { name, value, _ in
                    guard HTTPSyntax.equalsIgnoringCase(p, name, "connection") else { return }
                    for token in String(decoding: UnsafeRawBufferPointer(rebasing: p[value]), as: UTF8.self).split(separator: ",") {
                        let lowered = token.trimmingWhitespace().lowercased()
                        if !lowered.isEmpty && lowered != "content-length" && lowered != "transfer-encoding" { named.append(lowered) }
                    }
                }
            }
            Self.forEachField(p, from: firstField) { name, _, line in
                if Self.isFixedHopByHop(p, name) { return }
                if !named.isEmpty && named.contains(String(decoding: UnsafeRawBufferPointer(rebasing: p[name]), as: UTF8.self).lowercased()) {
                    return
                }
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

    // MARK: Parsing

    /// Whether `bytes[name]` is one of the hop-by-hop fields every message may carry (RFC 9110 §7.6.1).
    static func isFixedHopByHop(_ bytes: UnsafeRawBufferPointer, _ name: Range<Int>) -> Bool {
        switch name.count {
        case 2: HTTPSyntax.equalsIgnoringCase(bytes, name, "te")
        case 7: HTTPSyntax.equalsIgnoringCase(bytes, name, "trailer") || HTTPSyntax.equalsIgnoringCase(bytes, name, "upgrade")
        case 10: HTTPSyntax.equalsIgnoringCase(bytes, name, "connection") || HTTPSyntax.equalsIgnoringCase(bytes, name, "keep-alive")
        case 16: HTTPSyntax.equalsIgnoringCase(bytes, name, "proxy-connection")
        default: false
        }
    }

    /// The index after the CRLF that ends the line starting at `start` (the head is known to be well formed).
    private static func lineEnd(_ bytes: UnsafeRawBufferPointer, from start: Int) -> Int {
        var i = start
        while bytes[i] != HTTPSyntax.lf { i += 1 }
        return i + 1
    }

    /// Calls `body(name, value, line)` for each field line of a head already parsed by ``Fields/scan(_:maxHeaderCount:)``.
    private static func forEachField(_ bytes: UnsafeRawBufferPointer, from start: Int,
                                     _ body: (Range<Int>, Range<Int>, Range<Int>) -> Void) {
        var i = start
        while bytes[i] != HTTPSyntax.cr {
            let end = lineEnd(bytes, from: i)
            var colon = i
            while bytes[colon] != HTTPSyntax.colon { colon += 1 }
            var valueStart = colon + 1
            while HTTPSyntax.isWhitespace(bytes[valueStart]) { valueStart += 1 }
            var valueEnd = end - 2
            while valueEnd > valueStart && HTTPSyntax.isWhitespace(bytes[valueEnd - 1]) { valueEnd -= 1 }
            body(i..<colon, valueStart..<valueEnd, i..<end)
            i = end
        }
    }

    /// What one pass over the head finds.
    private struct Fields {
        var status = 0
        var isHTTP11 = false
        var contentLength: Int?
        var transferEncoding = false
        /// Transfer codings listed, over all Transfer-Encoding fields.
        var codings = 0
        var chunkedLast = false
        var chunkedNotLast = false
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
            var count = 0
            while true {
                guard i + 1 < n else { return .failure(.malformedHeader) }
                if p[i] == HTTPSyntax.cr {
                    guard p[i + 1] == HTTPSyntax.lf, i + 2 == n else { return .failure(.malformedHeader) }
                    return .success(fields)
                }
                // name ":" OWS value OWS CRLF. A line starting with whitespace (obsolete folding) has an empty name.
                let nameStart = i
                while i < n && HTTPSyntax.isToken(p[i]) { i += 1 }
                guard i > nameStart, i < n, p[i] == HTTPSyntax.colon else { return .failure(.malformedHeader) }
                let name = nameStart..<i
                i += 1
                while i < n && HTTPSyntax.isWhitespace(p[i]) { i += 1 }
                let valueStart = i
                while i < n && p[i] != HTTPSyntax.cr {
                    guard HTTPSyntax.isFieldContent(p[i]) else { return .failure(.malformedHeader) }
                    i += 1
                }
                guard i + 1 < n, p[i + 1] == HTTPSyntax.lf else { return .failure(.malformedHeader) }
                var valueEnd = i
                while valueEnd > valueStart && HTTPSyntax.isWhitespace(p[valueEnd - 1]) { valueEnd -= 1 }
                i += 2
                count += 1
                guard count <= maxHeaderCount else { return .failure(.tooManyHeaders(limit: maxHeaderCount)) }
                if let error = fields.note(p, name: name, value: valueStart..<valueEnd) { return .failure(error) }
            }
        }

        /// Records what a field means for framing and hop-by-hop handling.
        private mutating func note(_ p: UnsafeRawBufferPointer, name: Range<Int>, value: Range<Int>) -> HTTPResponseFramerError? {
            switch name.count {
            case 14 where HTTPSyntax.equalsIgnoringCase(p, name, "content-length"):
                // One field, digits only: "5, 5" and repeated fields are rejected rather than reconciled.
                guard contentLength == nil, (1...18).contains(value.count) else { return .invalidContentLength }
                var length = 0
                for j in value {
                    guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(p[j]) else { return .invalidContentLength }
                    length = length * 10 + Int(p[j] &- 48)
                }
                contentLength = length
            case 17 where HTTPSyntax.equalsIgnoringCase(p, name, "transfer-encoding"):
                transferEncoding = true
                Self.forEachListElement(p, value) { coding in
                    codings += 1
                    if HTTPSyntax.equalsIgnoringCase(p, coding, "chunked") {
                        if chunkedLast { chunkedNotLast = true }  // chunked twice
                        chunkedLast = true
                    } else {
                        if chunkedLast { chunkedNotLast = true }
                        chunkedLast = false
                    }
                }
            case 10 where HTTPSyntax.equalsIgnoringCase(p, name, "connection"):
                hopByHop = true
                Self.forEachListElement(p, value) { option in
                    if HTTPSyntax.equalsIgnoringCase(p, option, "keep-alive") {
                        connectionKeepAlive = true
                    } else {
                        if HTTPSyntax.equalsIgnoringCase(p, option, "close") { connectionClose = true }
                        hopByHopBesidesKeepAlive = true
                    }
                }
            default:
                if isFixedHopByHop(p, name) {
                    hopByHop = true
                    hopByHopBesidesKeepAlive = true
                }
            }
            return nil
        }

        /// Calls `body` with each non-empty element of a comma-separated list, without whitespace and without
        /// parameters (`;…`).
        private static func forEachListElement(_ p: UnsafeRawBufferPointer, _ list: Range<Int>, _ body: (Range<Int>) -> Void) {
            var i = list.lowerBound
            while i < list.upperBound {
                while i < list.upperBound && (HTTPSyntax.isWhitespace(p[i]) || p[i] == HTTPSyntax.comma) { i += 1 }
                let start = i
                while i < list.upperBound && p[i] != HTTPSyntax.comma && p[i] != HTTPSyntax.semicolon && !HTTPSyntax.isWhitespace(p[i]) {
                    i += 1
                }
                if i > start { body(start..<i) }
                while i < list.upperBound && p[i] != HTTPSyntax.comma { i += 1 }
            }
        }
    }
}
