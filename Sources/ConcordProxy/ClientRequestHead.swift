import NIOCore

/// A client's request head as the bytes it sent, with only what the proxy needs from it: the method's kind, the
/// version, how the body is framed, whether the client keeps the connection, where the target is, and whether a
/// field must change on the way to the backend. Routing keys are read from the bytes on demand
/// (``RequestKeyExtractor/keyHash(for:peer:)``), and the head goes to the backend as it came plus the
/// `X-Forwarded-*` fields (``RequestForwarding``). Parsing is strict: anything that two HTTP parsers could read
/// differently is an error, not a guess.
struct ClientRequestHead {
    enum Framing: Equatable {
        /// No body: neither Content-Length nor Transfer-Encoding, or `Content-Length: 0`.
        case none
        case contentLength(Int)
        /// `Transfer-Encoding` whose last coding is `chunked`: the body ends with the last chunk and trailers.
        case chunked
    }

    /// The request line and the field lines up to and including the blank line.
    let bytes: ByteBuffer
    /// The request target (`/path?query`) within `bytes`.
    let target: Range<Int>
    /// `HTTP/1.0` (otherwise `HTTP/1.1`).
    let isHTTP10: Bool
    let isHEAD: Bool
    let isCONNECT: Bool
    /// GET, HEAD, OPTIONS, PUT, DELETE or TRACE: a proxy may resend it after a failed attempt (RFC 9110 §9.2.2).
    let isIdempotent: Bool
    let framing: Framing
    /// Whether the client keeps the connection open after this exchange.
    let keepAlive: Bool
    /// Whether a field must be dropped or rewritten on the way to the backend: a hop-by-hop field (Connection,
    /// Keep-Alive, Proxy-Connection, TE, Trailer, Upgrade) or one the proxy sets (X-Forwarded-For,
    /// X-Forwarded-Proto, Forwarded). Without one (the usual request) the head's bytes go out unchanged.
    let needsFieldEdits: Bool
    /// `Expect: 100-continue` on an HTTP/1.1 request with a body: the client may wait for an interim
    /// `100 Continue` before sending the body (an HTTP/1.0 request's expectation is ignored, RFC 9110 §10.1.1).
    let expectsContinue: Bool
    /// The value of the only Cookie field, when there is exactly one (the usual case): a cookie key is then looked
    /// up there without another pass over the fields. `nil` with none or several.
    let onlyCookieField: Range<Int>?
    /// How many Cookie fields the head has.
    let cookieFieldCount: Int
    /// The value of the `Upgrade` field when the request asks to switch protocols (a WebSocket handshake, say):
    /// HTTP/1.1, `Connection` lists `upgrade`, exactly one `Upgrade` field, and no body — so every byte after the
    /// head belongs to the new protocol if the backend answers 101 (RFC 9110 §7.8). `nil` otherwise, and for
    /// `h2c`; such a request's `Upgrade` is then dropped as hop-by-hop and it is answered like any other.
    let upgrade: Range<Int>?

    /// Parses `bytes`, a complete head (ending with the blank line).
    init(parsing bytes: ByteBuffer, maxHeaderCount: Int) throws(HTTPRequestFramerError) {
        let fields = try bytes.withUnsafeReadableBytes { Fields.scan($0, maxHeaderCount: maxHeaderCount) }.get()
        // RFC 9112 §3.2: one Host in HTTP/1.1 (at most one in 1.0), whatever the target's form — an absolute-form
        // request without Host, or with two, was given the target's before 2026-12-03 (nginx answers 400 too).
        if fields.hostCount > 1 || (fields.hostCount == 0 && !fields.isHTTP10) { throw .invalidHost }
        if let originForm = try Self.originForm(of: bytes, target: fields.target) {
            self = try ClientRequestHead(parsing: originForm, maxHeaderCount: maxHeaderCount)
            return
        }
        let codings = fields.transferCodings
        if codings.isPresent {
            // RFC 9112 §6.1, §6.3: Transfer-Encoding with Content-Length, in HTTP/1.0, or other than one plain
            // `chunked` (``HTTPSyntax/TransferCodings/isExactlyChunked``) is how requests get smuggled past proxies.
            if fields.contentLength != nil || fields.isHTTP10 || !codings.isExactlyChunked {
                throw .ambiguousFraming
            }
        }
        // Not absolute-form (rewritten above): origin-form, or `*` for OPTIONS (RFC 9112 §3.2.4); CONNECT's
        // authority-form is answered 405. `GET *` or `GET example.com:80` went to the backend as they were.
        let first = bytes.getInteger(at: bytes.readerIndex + fields.target.lowerBound, as: UInt8.self)
        let isAsterisk = fields.target.count == 1 && first == UInt8(ascii: "*")
        guard first == UInt8(ascii: "/") || (isAsterisk && fields.method == .options) || fields.method == .connect else {
            throw .malformedRequestLine
        }
        self.bytes = bytes
        self.target = fields.target
        self.isHTTP10 = fields.isHTTP10
        self.isHEAD = fields.method == .head
        self.isCONNECT = fields.method == .connect
        self.isIdempotent = fields.method.isIdempotent
        if codings.isPresent {
            framing = .chunked
        } else if let length = fields.contentLength, length > 0 {
            framing = .contentLength(length)
        } else {
            framing = .none
        }
        self.keepAlive = !fields.connectionClose && (!fields.isHTTP10 || fields.connectionKeepAlive)
        self.needsFieldEdits = fields.needsEdits
        self.expectsContinue = fields.expectsContinue && !fields.isHTTP10 && framing != .none
        self.cookieFieldCount = fields.cookieCount
        self.onlyCookieField = fields.cookieCount == 1 ? fields.firstCookie : nil
        let asksUpgrade = fields.connectionUpgrade && fields.upgradeCount == 1 && !fields.isHTTP10 && framing == .none
            && fields.method != .connect
        self.upgrade = asksUpgrade ? fields.upgradeValue : nil
    }

    /// A head whose target is in absolute-form (`GET http://shop.example/cart?x=1 HTTP/1.1`, RFC 9112 §3.2.2) as
    /// the same request in origin-form (`GET /cart?x=1`) with `Host` set to the target's authority, every `Host`
    /// field it had replaced — what the RFC asks of a proxy, and what the backend would have taken from the target
    /// anyway (it must ignore `Host` then). So keys (`header:host`, `path`, `query:`), the access log and the backend
    /// all see one request, as they do over HTTP/2 (whose `:path` must be origin-form). `nil` for any other target.
    /// A scheme other than `http` or `https`, or an authority that is empty or carries user information
    /// (RFC 9110 §4.2.4), is malformed.
    static func originForm(of bytes: ByteBuffer, target: Range<Int>) throws(HTTPRequestFramerError) -> ByteBuffer? {
        try bytes.withUnsafeReadableBytes { p throws(HTTPRequestFramerError) -> ByteBuffer? in
            guard target.count > 0, p[target.lowerBound] != UInt8(ascii: "/"), p[target.lowerBound] != UInt8(ascii: "*") else { return nil }
            // scheme "://" (RFC 3986 §3.1); anything else (CONNECT's host:port) is not absolute-form.
            var i = target.lowerBound
            while i < target.upperBound, HTTPSyntax.isSchemeCharacter(p[i]) { i += 1 }
            guard i > target.lowerBound, target.upperBound - i >= 3, p[i] == UInt8(ascii: ":"),
                  p[i + 1] == UInt8(ascii: "/"), p[i + 2] == UInt8(ascii: "/") else { return nil }
            let scheme = target.lowerBound..<i
            guard HTTPSyntax.equalsIgnoringCase(p, scheme, "http") || HTTPSyntax.equalsIgnoringCase(p, scheme, "https") else {
                throw .malformedRequestLine
            }
            let authorityStart = i + 3
            var authorityEnd = authorityStart
            while authorityEnd < target.upperBound, ![UInt8(ascii: "/"), UInt8(ascii: "?"), UInt8(ascii: "#")].contains(p[authorityEnd]) {
                if p[authorityEnd] == UInt8(ascii: "@") { throw .invalidHost }
                authorityEnd += 1
            }
            guard authorityEnd > authorityStart else { throw .invalidHost }
            let requestLineEnd = HTTPSyntax.lineEnd(p, from: target.upperBound)
            var out = ByteBuffer()
            out.reserveCapacity(p.count + 8)
            out.writeBytes(UnsafeRawBufferPointer(rebasing: p[0..<target.lowerBound]))
            if authorityEnd == target.upperBound || p[authorityEnd] != UInt8(ascii: "/") { out.writeStaticString("/") }
            out.writeBytes(UnsafeRawBufferPointer(rebasing: p[authorityEnd..<requestLineEnd]))
            out.writeStaticString("Host: ")
            out.writeBytes(UnsafeRawBufferPointer(rebasing: p[authorityStart..<authorityEnd]))
            out.writeStaticString("\r\n")
            HTTPSyntax.forEachField(p, from: requestLineEnd) { name, _, line in
                if !HTTPSyntax.equalsIgnoringCase(p, name, "host") { out.writeBytes(UnsafeRawBufferPointer(rebasing: p[line])) }
            }
            out.writeStaticString("\r\n")
            return out
        }
    }

    /// The declared body length (`nil` for chunked bodies, 0 without a body).
    var contentLength: Int? {
        switch framing {
        case .none: 0
        case .contentLength(let length): length
        case .chunked: nil
        }
    }

    /// The methods the proxy treats specially; every other token is `.other`.
    enum Method: Equatable {
        case get, head, options, put, delete, trace, connect, other

        var isIdempotent: Bool {
            switch self {
            case .get, .head, .options, .put, .delete, .trace: true
            case .connect, .other: false
            }
        }

        init(_ p: UnsafeRawBufferPointer, _ range: Range<Int>) {
            // Methods are case-sensitive (RFC 9110 §9.1): compared exactly.
            func equals(_ literal: StaticString) -> Bool {
                guard range.count == literal.utf8CodeUnitCount else { return false }
                return UnsafeRawBufferPointer(rebasing: p[range]).elementsEqual(
                    UnsafeBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount))
            }
            self = if equals("GET") { .get } else if equals("HEAD") { .head } else if equals("PUT") { .put }
                else if equals("DELETE") { .delete } else if equals("OPTIONS") { .options } else if equals("TRACE") { .trace }
                else if equals("CONNECT") { .connect } else { .other }
        }
    }

    /// What one pass over the head finds.
    private struct Fields {
        var method = Method.other
        var target = 0..<0
        var isHTTP10 = false
        var contentLength: Int?
        var transferCodings = HTTPSyntax.TransferCodings()
        var connectionClose = false
        var connectionKeepAlive = false
        var hostCount = 0
        var expectsContinue = false
        var needsEdits = false
        var cookieCount = 0
        var firstCookie: Range<Int>?
        var connectionUpgrade = false
        var upgradeCount = 0
        var upgradeValue: Range<Int>?

        static func scan(_ p: UnsafeRawBufferPointer, maxHeaderCount: Int) -> Result<Fields, HTTPRequestFramerError> {
            var fields = Fields()
            let n = p.count
            // Request line: method SP request-target SP HTTP-version CRLF (RFC 9112 §3), one space each.
            var i = 0
            while i < n && HTTPSyntax.isToken(p[i]) { i += 1 }
            guard i > 0, i < n, p[i] == HTTPSyntax.space else { return .failure(.malformedRequestLine) }
            fields.method = Method(p, 0..<i)
            i += 1
            let targetStart = i
            while i < n && HTTPSyntax.isTargetByte(p[i]) { i += 1 }
            guard i > targetStart, i < n, p[i] == HTTPSyntax.space else {
                return .failure(i < n && p[i] == UInt8(ascii: "#") ? .fragmentInTarget : .malformedRequestLine)
            }
            fields.target = targetStart..<i
            i += 1
            guard i + 9 < n, p[i] == UInt8(ascii: "H"), p[i + 1] == UInt8(ascii: "T"), p[i + 2] == UInt8(ascii: "T"),
                  p[i + 3] == UInt8(ascii: "P"), p[i + 4] == UInt8(ascii: "/"), HTTPSyntax.isDigit(p[i + 5]),
                  p[i + 6] == UInt8(ascii: "."), HTTPSyntax.isDigit(p[i + 7]),
                  p[i + 8] == HTTPSyntax.cr, p[i + 9] == HTTPSyntax.lf
            else { return .failure(.malformedRequestLine) }
            guard p[i + 5] == UInt8(ascii: "1"), p[i + 7] == UInt8(ascii: "0") || p[i + 7] == UInt8(ascii: "1") else {
                return .failure(.unsupportedVersion)
            }
            fields.isHTTP10 = p[i + 7] == UInt8(ascii: "0")
            i += 10
            let failure = HTTPSyntax.scanFields(p, from: i, maxCount: maxHeaderCount) { fields.note(p, name: $0, value: $1) }
            return failure.map { .failure($0) } ?? .success(fields)
        }

        /// Records what a field means for framing, keep-alive and forwarding.
        private mutating func note(_ p: UnsafeRawBufferPointer, name: Range<Int>, value: Range<Int>) -> HTTPRequestFramerError? {
            switch name.count {
            case 4 where HTTPSyntax.equalsIgnoringCase(p, name, "host"):
                hostCount += 1
                guard HTTPSyntax.isValidHostValue(p, value) else { return .invalidHost }
            case 6 where HTTPSyntax.equalsIgnoringCase(p, name, "cookie"):
                cookieCount += 1
                if firstCookie == nil { firstCookie = value }
            case 6 where HTTPSyntax.equalsIgnoringCase(p, name, "expect"):
                if HTTPSyntax.equalsIgnoringCase(p, value, "100-continue") { expectsContinue = true }
            case 14 where HTTPSyntax.equalsIgnoringCase(p, name, "content-length"):
                // One field, digits only: "5, 5" and repeated fields are rejected rather than reconciled.
                guard contentLength == nil, let length = HTTPSyntax.decimal(p, value) else { return .invalidContentLength }
                contentLength = length
            case 17 where HTTPSyntax.equalsIgnoringCase(p, name, "transfer-encoding"):
                transferCodings.add(p, value)
            case 10 where HTTPSyntax.equalsIgnoringCase(p, name, "connection"):
                needsEdits = true
                HTTPSyntax.forEachListElement(p, value) { option in
                    if HTTPSyntax.equalsIgnoringCase(p, option, "keep-alive") { connectionKeepAlive = true }
                    if HTTPSyntax.equalsIgnoringCase(p, option, "close") { connectionClose = true }
                    if HTTPSyntax.equalsIgnoringCase(p, option, "upgrade") { connectionUpgrade = true }
                }
            case 7 where HTTPSyntax.equalsIgnoringCase(p, name, "upgrade"):
                needsEdits = true
                upgradeCount += 1
                // h2c, HTTP/2 over cleartext by upgrade, is deprecated (RFC 9113 §3.1) and would need the
                // hop-by-hop HTTP2-Settings carried along: such a request goes on as plain HTTP/1.1.
                if !value.isEmpty && !HTTPSyntax.equalsIgnoringCase(p, value, "h2c") { upgradeValue = value }
            default:
                if HTTPSyntax.isFixedHopByHop(p, name) || RequestForwarding.isForwardingField(p, name)
                    || RequestForwarding.isRelayedField(p, name) { needsEdits = true }
            }
            return nil
        }
    }
}
