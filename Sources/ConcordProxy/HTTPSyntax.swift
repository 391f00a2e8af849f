/// The few byte classes and scans of HTTP/1.1's grammar (RFC 9110 §5.6, RFC 9112) that ``ClientRequestHead``,
/// ``BackendResponseHead`` and ``ChunkedBodyScanner`` need, on raw bytes.
import NIOCore

enum HTTPSyntax {
    static let cr: UInt8 = 0x0D
    static let lf: UInt8 = 0x0A
    static let space: UInt8 = 0x20
    static let tab: UInt8 = 0x09
    static let colon: UInt8 = 0x3A
    static let comma: UInt8 = 0x2C
    static let semicolon: UInt8 = 0x3B

    /// `tchar`: a byte of a field name or of a token in a field value.
    @inline(__always)
    static func isToken(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"), UInt8(ascii: "'"),
             UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "^"), UInt8(ascii: "_"),
             UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            true
        default:
            false
        }
    }

    /// A byte allowed in a field value or a reason phrase: visible ASCII, space, tab, or obs-text (≥ 0x80).
    /// Control bytes (CR, LF and NUL among them) are not.
    @inline(__always)
    static func isFieldContent(_ byte: UInt8) -> Bool {
        byte == tab || (byte >= space && byte != 0x7F)
    }

    @inline(__always)
    static func isWhitespace(_ byte: UInt8) -> Bool { byte == space || byte == tab }

    /// The value of a hexadecimal digit, or `nil`.
    @inline(__always)
    static func hexValue(_ byte: UInt8) -> Int? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): Int(byte &- UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): Int(byte &- UInt8(ascii: "a") &+ 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): Int(byte &- UInt8(ascii: "A") &+ 10)
        default: nil
        }
    }

    /// Whether `bytes[range]` is `lowercased` ignoring ASCII case (`lowercased` holds only lowercase letters and
    /// `-`; `range` holds no control bytes, so setting bit 5 maps exactly the uppercase letters onto lowercase ones).
    @inline(__always)
    static func equalsIgnoringCase(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, _ lowercased: StaticString) -> Bool {
        guard range.count == lowercased.utf8CodeUnitCount else { return false }
        let literal = lowercased.utf8Start
        var k = 0
        for i in range {
            if bytes[i] | 0x20 != literal[k] { return false }
            k += 1
        }
        return true
    }

    @inline(__always)
    static func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

    /// Whether `p[value]` is a `Host` field value RFC 9112 §3.2 lets through: `uri-host [ ":" port ]` (RFC 3986 §3.2.2
    /// — a reg-name of unreserved, percent-encoded and sub-delim bytes, an IPv4 address, or a bracketed IP literal),
    /// the port at most 65535, or empty (a target without authority). Anything else — `a b`, `evil.com/path`,
    /// `user@host`, `[::1`, `[vvvv]`, `[1:2]`, bytes above 0x7F — is a 400: a backend would read the same field
    /// another way.
    static func isValidHostValue(_ p: UnsafeRawBufferPointer, _ value: Range<Int>) -> Bool {
        var i = value.lowerBound
        let end = value.upperBound
        if i < end && p[i] == UInt8(ascii: "[") {
            i += 1
            let literalStart = i
            while i < end && p[i] != UInt8(ascii: "]") { i += 1 }
            guard i < end, isValidIPLiteral(p, literalStart..<i) else { return false }
            i += 1
        } else {
            while i < end && p[i] != UInt8(ascii: ":") {
                guard isRegNameByte(p[i]) else { return false }
                i += 1
            }
        }
        guard i < end else { return true }
        guard p[i] == UInt8(ascii: ":") else { return false }
        i += 1
        var port = 0
        while i < end {
            guard isDigit(p[i]) else { return false }
            port = port * 10 + Int(p[i] - UInt8(ascii: "0"))
            guard port <= 65535 else { return false }
            i += 1
        }
        return true
    }

    /// What goes between a host's brackets (RFC 3986 §3.2.2): an IPv6 address (as `inet_pton` reads it), or
    /// IPvFuture — `v`, hex digits, `.`, then unreserved, sub-delim or `:` bytes. (Until 2026-12-03 any run of hex
    /// digits, `:`, `.` and `v` passed, `[vvvv]` among them.)
    private static func isValidIPLiteral(_ p: UnsafeRawBufferPointer, _ literal: Range<Int>) -> Bool {
        guard let first = literal.first.map({ p[$0] }) else { return false }
        if first | 0x20 == UInt8(ascii: "v") {
            var i = literal.lowerBound + 1
            while i < literal.upperBound && hexValue(p[i]) != nil { i += 1 }
            guard i > literal.lowerBound + 1, i + 1 < literal.upperBound, p[i] == UInt8(ascii: ".") else { return false }
            return p[(i + 1)..<literal.upperBound].allSatisfy { ($0 != UInt8(ascii: "%") && isRegNameByte($0)) || $0 == UInt8(ascii: ":") }
        }
        // INET6_ADDRSTRLEN - 1: no IPv6 address is longer.
        guard literal.count <= 45, p[literal].allSatisfy({ hexValue($0) != nil || $0 == UInt8(ascii: ":") || $0 == UInt8(ascii: ".") }) else {
            return false
        }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: p[literal]), as: UTF8.self)
        return (try? SocketAddress(ipAddress: text, port: 0))?.protocol == .inet6
    }

    /// unreserved / pct-encoded / sub-delims (RFC 3986 §3.2.2).
    @inline(__always)
    private static func isRegNameByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): true
        case UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: "%"): true
        case UInt8(ascii: "!"), UInt8(ascii: "$"), UInt8(ascii: "&"), UInt8(ascii: "'"), UInt8(ascii: "("), UInt8(ascii: ")"),
             UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: ","), UInt8(ascii: ";"), UInt8(ascii: "="): true
        default: false
        }
    }

    /// A byte of a request target: visible ASCII or obs-text (no space, no control byte), and not `#` (a target
    /// has no fragment, RFC 9112 §3.2).
    @inline(__always)
    static func isTargetByte(_ byte: UInt8) -> Bool { byte > space && byte != 0x7F && byte != UInt8(ascii: "#") }

    /// The value of `bytes[range]` as a plain decimal number of 1 to 18 digits (so it cannot overflow), or `nil`.
    static func decimal(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Int? {
        guard (1...18).contains(range.count) else { return nil }
        var value = 0
        for i in range {
            guard isDigit(bytes[i]) else { return nil }
            value = value * 10 + Int(bytes[i] &- UInt8(ascii: "0"))
        }
        return value
    }

    /// Whether `bytes[a]` and `other[b]` are the same ignoring ASCII case (field names: tokens, no control bytes).
    @inline(__always)
    static func equalsIgnoringCase(_ bytes: UnsafeRawBufferPointer, _ a: Range<Int>, _ other: UnsafeRawBufferPointer, _ b: Range<Int>) -> Bool {
        guard a.count == b.count else { return false }
        var j = b.lowerBound
        for i in a {
            if lowercased(bytes[i]) != lowercased(other[j]) { return false }
            j += 1
        }
        return true
    }

    /// The length of the head at the front of `buffer` (through its blank line, CRLF CRLF), or `nil` if it has
    /// not all arrived; the first `start` bytes were searched before. Only CRLF line ends are accepted: a bare LF
    /// is an error at once rather than a wait for a CRLF CRLF that may never come; so are `limit` bytes without
    /// the head's end.
    static func headLength<Failure: HTTPHeadError>(_ buffer: ByteBuffer, from start: Int, limit: Int,
                                                    failing: Failure.Type) throws(Failure) -> Int? {
        let found: Int?? = buffer.withUnsafeReadableBytes { bytes in
            let end = min(bytes.count, limit)
            var i = start
            while i < end {
                if bytes[i] == lf {
                    guard i > 0, bytes[i - 1] == cr else { return .some(nil) }
                    if i >= 3 && bytes[i - 2] == lf && bytes[i - 3] == cr { return i + 1 }
                }
                i += 1
            }
            return nil
        }
        switch found {
        case .some(.some(let length)): return length
        case .some(.none): throw .malformedHeader
        case .none:
            if buffer.readableBytes >= limit { throw .headTooLarge(limit: limit) }
            return nil
        }
    }

    /// Checks the field lines of a head from `start` to its blank line: `name ":" OWS value OWS CRLF` each, a name
    /// of token bytes, a value of field content (RFC 9112 §5). Calls `note(name, value)` for each (the value without
    /// surrounding whitespace), which returns an error to refuse the field. - Returns: the first error, or `nil`.
    static func scanFields<Failure: HTTPHeadError>(_ p: UnsafeRawBufferPointer, from start: Int, maxCount: Int,
                                                   _ note: (Range<Int>, Range<Int>) -> Failure?) -> Failure? {
        let n = p.count
        var i = start
        var count = 0
        while true {
            guard i + 1 < n else { return .malformedHeader }
            if p[i] == cr {
                return p[i + 1] == lf && i + 2 == n ? nil : .malformedHeader
            }
            // A line starting with whitespace (obsolete folding) has an empty name.
            let nameStart = i
            while i < n && isToken(p[i]) { i += 1 }
            guard i > nameStart, i < n, p[i] == colon else { return .malformedHeader }
            let name = nameStart..<i
            i += 1
            while i < n && isWhitespace(p[i]) { i += 1 }
            let valueStart = i
            while i < n && p[i] != cr {
                guard isFieldContent(p[i]) else { return .malformedHeader }
                i += 1
            }
            guard i + 1 < n, p[i + 1] == lf else { return .malformedHeader }
            var valueEnd = i
            while valueEnd > valueStart && isWhitespace(p[valueEnd - 1]) { valueEnd -= 1 }
            i += 2
            count += 1
            guard count <= maxCount else { return .tooManyHeaders(limit: maxCount) }
            if let refusal = note(name, valueStart..<valueEnd) { return refusal }
        }
    }

    /// Whether `bytes[name]` is one of the hop-by-hop fields every message may carry (RFC 9110 §7.6.1).
    static func isFixedHopByHop(_ bytes: UnsafeRawBufferPointer, _ name: Range<Int>) -> Bool {
        switch name.count {
        case 2: equalsIgnoringCase(bytes, name, "te")
        case 7: equalsIgnoringCase(bytes, name, "trailer") || equalsIgnoringCase(bytes, name, "upgrade")
        case 10: equalsIgnoringCase(bytes, name, "connection") || equalsIgnoringCase(bytes, name, "keep-alive")
        case 16: equalsIgnoringCase(bytes, name, "proxy-connection")
        default: false
        }
    }

    /// The index after the CRLF that ends the line starting at `start` (the head is known to be well formed).
    static func lineEnd(_ bytes: UnsafeRawBufferPointer, from start: Int) -> Int {
        var i = start
        while bytes[i] != lf { i += 1 }
        return i + 1
    }

    /// Calls `body(name, value, line)` for each field line of a head already checked to be well formed, from the
    /// first field line at `start` to the blank line; `value` is without surrounding whitespace.
    static func forEachField(_ bytes: UnsafeRawBufferPointer, from start: Int, _ body: (Range<Int>, Range<Int>, Range<Int>) -> Void) {
        var i = start
        while bytes[i] != cr {
            let end = lineEnd(bytes, from: i)
            var nameEnd = i
            while bytes[nameEnd] != colon { nameEnd += 1 }
            var valueStart = nameEnd + 1
            while isWhitespace(bytes[valueStart]) { valueStart += 1 }
            var valueEnd = end - 2
            while valueEnd > valueStart && isWhitespace(bytes[valueEnd - 1]) { valueEnd -= 1 }
            body(i..<nameEnd, valueStart..<valueEnd, i..<end)
            i = end
        }
    }

    /// What the `Transfer-Encoding` fields of one head list, over all of them: how many codings, whether `chunked`
    /// is the last, and whether it came anywhere else too (twice, or with another coding after it). Both framers
    /// judge smuggling from these (RFC 9112 §6.1, §6.3).
    struct TransferCodings {
        private(set) var isPresent = false
        private(set) var count = 0
        private(set) var chunkedLast = false
        private(set) var chunkedNotLast = false
        /// Exactly one field whose whole value is `chunked` (any case): the only request framing by
        /// Transfer-Encoding the proxy takes, as nginx. The list reading above skips what a backend reading the
        /// field literally does not: `chunked;q=1`, `chunked garbage`, `chunked,`, `gzip, chunked`, an empty second
        /// field — each made the proxy frame a chunked body the head of which it forwarded unchanged to a backend
        /// that saw no body, and the chunk data became a request of its own (smuggling, found 2026-12-03).
        private(set) var isExactlyChunked = false
        /// Every field is a plain list of codings — tokens separated by commas and optional whitespace, none empty,
        /// none with parameters (`chunked;q=1`) or words after it (`chunked garbage`) — so what it says does not
        /// depend on how a reader skips what it does not know. Responses must be (a backend's `gzip, chunked` is
        /// fine; `chunked garbage` was framed as chunked and passed on to clients as it was).
        private(set) var isPlainList = true
        private var fields = 0

        /// Adds one `Transfer-Encoding` field's list.
        mutating func add(_ bytes: UnsafeRawBufferPointer, _ value: Range<Int>) {
            isPresent = true
            fields += 1
            isExactlyChunked = fields == 1 && HTTPSyntax.equalsIgnoringCase(bytes, value, "chunked")
            if !isExactlyChunked && isPlainList { isPlainList = Self.isPlainList(bytes, value) }
            HTTPSyntax.forEachListElement(bytes, value) { coding in
                count += 1
                if chunkedLast { chunkedNotLast = true }
                chunkedLast = HTTPSyntax.equalsIgnoringCase(bytes, coding, "chunked")
            }
        }

        /// `token *( OWS "," OWS token )` over `bytes[value]` (trimmed of whitespace already).
        private static func isPlainList(_ bytes: UnsafeRawBufferPointer, _ value: Range<Int>) -> Bool {
            var i = value.lowerBound
            while true {
                let start = i
                while i < value.upperBound && HTTPSyntax.isToken(bytes[i]) { i += 1 }
                guard i > start else { return false }
                while i < value.upperBound && HTTPSyntax.isWhitespace(bytes[i]) { i += 1 }
                if i == value.upperBound { return true }
                guard bytes[i] == HTTPSyntax.comma else { return false }
                i += 1
                while i < value.upperBound && HTTPSyntax.isWhitespace(bytes[i]) { i += 1 }
            }
        }
    }

    /// Calls `body` with each non-empty element of a comma-separated list, without whitespace and without
    /// parameters (`;…`).
    static func forEachListElement(_ bytes: UnsafeRawBufferPointer, _ list: Range<Int>, _ body: (Range<Int>) -> Void) {
        var i = list.lowerBound
        while i < list.upperBound {
            while i < list.upperBound && (isWhitespace(bytes[i]) || bytes[i] == comma) { i += 1 }
            let start = i
            while i < list.upperBound && bytes[i] != comma && bytes[i] != semicolon && !isWhitespace(bytes[i]) { i += 1 }
            if i > start { body(start..<i) }
            while i < list.upperBound && bytes[i] != comma { i += 1 }
        }
    }

    /// The field names that the Connection fields of a well-formed head (fields from `start`) list as hop-by-hop,
    /// except the framing fields, which must stay with the message, and `Host`, without which an HTTP/1.1 request is
    /// invalid (`Connection: host` made the proxy send the backend a request with no Host; nginx ignores such
    /// options altogether).
    static func fieldsNamedByConnection(_ bytes: UnsafeRawBufferPointer, from start: Int) -> [Range<Int>] {
        var named: [Range<Int>] = []
        forEachField(bytes, from: start) { name, value, _ in
            guard equalsIgnoringCase(bytes, name, "connection") else { return }
            forEachListElement(bytes, value) { option in
                if !equalsIgnoringCase(bytes, option, "content-length") && !equalsIgnoringCase(bytes, option, "transfer-encoding")
                    && !equalsIgnoringCase(bytes, option, "host") {
                    named.append(option)
                }
            }
        }
        return named
    }
}

extension HTTPSyntax {
    /// Whether `bytes[range]` is `text`, exactly or ignoring ASCII case (for field names, whose case does not count).
    static func equals(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, _ text: String, ignoringCase: Bool = false) -> Bool {
        guard range.count == text.utf8.count else { return false }
        var i = range.lowerBound
        for byte in text.utf8 {
            if ignoringCase ? lowercased(bytes[i]) != lowercased(byte) : bytes[i] != byte { return false }
            i += 1
        }
        return true
    }

    /// A letter, digit, `+`, `-` or `.`: what a URI scheme is made of (RFC 3986 §3.1).
    static func isSchemeCharacter(_ byte: UInt8) -> Bool {
        (byte | 0x20) &- UInt8(ascii: "a") < 26 || byte &- UInt8(ascii: "0") < 10
            || byte == UInt8(ascii: "+") || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".")
    }

    /// `byte` with ASCII A–Z mapped to a–z.
    @inline(__always)
    static func lowercased(_ byte: UInt8) -> UInt8 { byte &- UInt8(ascii: "A") < 26 ? byte | 0x20 : byte }

    /// `bytes[range]` (a field name: ASCII) as a `String` in lower case, as HTTP/2 writes field names.
    static func lowercasedString(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> String {
        String(unsafeUninitializedCapacity: range.count) { out in
            for (k, byte) in bytes[range].enumerated() { out[k] = lowercased(byte) }
            return range.count
        }
    }
}
