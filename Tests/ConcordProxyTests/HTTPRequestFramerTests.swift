import ConcordSessionsTesting
import NIOCore
import NIOHTTP1
import Testing

@testable import ConcordProxy

extension ClientRequestHead {
    /// A well-formed head for tests: `METHOD target HTTP/1.x`, a Host field, then `headers`.
    static func parsing(method: String = "GET", target: String = "/", headers: [(String, String)] = [],
                        http10: Bool = false) -> ClientRequestHead {
        var text = "\(method) \(target) HTTP/1.\(http10 ? 0 : 1)\r\nHost: test\r\n"
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        return try! ClientRequestHead(parsing: ByteBuffer(string: text + "\r\n"), maxHeaderCount: 100)
    }
}

@Suite(.timeLimit(.minutes(3))) struct HTTPRequestFramerTests {
    /// What the framer reported, with the bytes as text; consecutive body parts are merged (how a body is split
    /// depends on how it arrived).
    enum Recorded: Equatable, CustomStringConvertible {
        case head(String)
        case body(String, payload: Int)
        case end

        var description: String {
            switch self {
            case .head(let text): "head(\(text.debugDescription))"
            case .body(let text, let payload): "body(\(text.debugDescription), \(payload))"
            case .end: "end"
            }
        }
    }

    /// Feeds bytes to a framer as ``HTTPProxyHandler`` does: what is not consumed (a head in progress) goes in
    /// front of the next bytes.
    struct Driver {
        var framer: HTTPRequestFramer
        var partial: ByteBuffer?
        var recorded: [Recorded] = []
        var heads: [ClientRequestHead] = []
        /// Every byte handed on (heads and bodies), exactly.
        var forwarded: [UInt8] = []

        init(limits: HTTPRequestFramer.Limits = .init(maxHeadBytes: 4096, maxHeaderCount: 20)) {
            framer = HTTPRequestFramer(limits: limits)
        }

        mutating func feed(_ text: String) throws(HTTPRequestFramerError) {
            try feed(bytes: Array(text.utf8))
        }

        mutating func feed(bytes input: some Collection<UInt8>) throws(HTTPRequestFramerError) {
            var bytes = ByteBuffer(bytes: input)
            if var head = partial {
                partial = nil
                head.writeBuffer(&bytes)
                bytes = head
            }
            while let part = try framer.next(&bytes) { record(part) }
            if bytes.readableBytes > 0 { partial = bytes }
        }

        private mutating func record(_ part: HTTPRequestFramer.Part) {
            switch part {
            case .head(let head):
                heads.append(head)
                forwarded += head.bytes.readableBytesView
                recorded.append(.head(String(buffer: head.bytes)))
            case .body(let bytes, let payload):
                forwarded += bytes.readableBytesView
                if case .body(let before, let earlier) = recorded.last {
                    recorded[recorded.count - 1] = .body(before + String(buffer: bytes), payload: earlier + payload)
                } else {
                    recorded.append(.body(String(buffer: bytes), payload: payload))
                }
            case .end:
                recorded.append(.end)
            }
        }
    }

    static let get = "GET /a?b=c HTTP/1.1\r\nHost: t\r\nCookie: sid=abc\r\n\r\n"
    static let post = "POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nX-Mixed-Case: Kept\r\n\r\nhello"
    static let chunkedBody = "5;name=value;flag\r\nhello\r\n" + "A \r\n0123456789\r\n" + "0\r\nX-Checksum: abc\r\n\r\n"
    static let chunked = "PUT /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + chunkedBody
    static let http10 = "GET / HTTP/1.0\r\n\r\n"
    /// Three requests in one go (pipelined), the first after an empty line.
    static let pipelined = "\r\n" + get + post + chunked

    @Test func aRequestWithoutBodyIsAHeadAndAnEnd() throws {
        var driver = Driver()
        try driver.feed(Self.get)
        #expect(driver.recorded == [.head(Self.get), .end])
        let head = try #require(driver.heads.first)
        #expect(head.keepAlive && head.isIdempotent && !head.isHEAD && !head.isHTTP10 && !head.needsFieldEdits)
        #expect(head.framing == ClientRequestHead.Framing.none)
        #expect(head.text(head.target) == "/a?b=c")
    }

    /// Every form of `uri-host [":" port]` passes: names (with `_`, punycode), IPv4, bracketed IPv6, a port, and the
    /// empty value of a request without authority.
    @Test func everyValidHostFormPasses() throws {
        var options = Driver()
        try options.feed("OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n")
        #expect(options.heads.count == 1, "OPTIONS * is a request")
        for host in ["shop.example", "shop.example:8080", "a_b.example", "xn--caf-dma.example", "10.0.0.1:80", "[::1]", "[::1]:443",
                     "[2001:DB8::a:1]", "[::ffff:10.0.0.1]:80", "[v1.x:y]", "[V1F.a-b]", "localhost:", ""] {
            var driver = Driver()
            try driver.feed("GET / HTTP/1.1\r\nHost: \(host)\r\n\r\n")
            #expect(driver.heads.count == 1, "Host: \(host)")
        }
    }

    @Test func bodiesAreForwardedAsTheyCame() throws {
        var post = Driver()
        try post.feed(Self.post)
        #expect(post.recorded == [.head(String(Self.post.dropLast(5))), .body("hello", payload: 5), .end])
        #expect(post.heads.first?.framing == .contentLength(5))
        #expect(post.heads.first?.isIdempotent == false)
        var chunked = Driver()
        try chunked.feed(Self.chunked)
        // Chunk framing, extensions and trailers go through; only the 15 data bytes count against the body limit.
        #expect(chunked.recorded.dropFirst() == [.body(Self.chunkedBody, payload: 15), .end])
        #expect(chunked.heads.first?.framing == .chunked)
    }

    @Test func pipelinedRequestsFollowOneAnother() throws {
        var driver = Driver()
        try driver.feed(Self.pipelined)
        #expect(driver.heads.count == 3)
        #expect(driver.recorded.filter { $0 == .end }.count == 3)
        #expect(driver.forwarded == Array(Self.pipelined.utf8.dropFirst(2)), "all but the leading empty line")
    }

    @Test func everySplitGivesTheSameParts() throws {
        for request in [Self.get, Self.post, Self.chunked, Self.http10, Self.pipelined] {
            var whole = Driver()
            try whole.feed(request)
            let bytes = Array(request.utf8)
            // Byte by byte…
            var single = Driver()
            for byte in bytes { try single.feed(bytes: [byte]) }
            #expect(single.recorded == whole.recorded, "byte by byte: \(request.debugDescription)")
            // …and in two and three pieces at every boundary.
            for cut in 1..<bytes.count {
                var split = Driver()
                try split.feed(bytes: bytes[..<cut])
                try split.feed(bytes: bytes[cut...])
                #expect(split.recorded == whole.recorded, "cut at \(cut): \(request.debugDescription)")
                let second = cut + (bytes.count - cut) / 2
                var three = Driver()
                try three.feed(bytes: bytes[..<cut])
                try three.feed(bytes: bytes[cut..<second])
                try three.feed(bytes: bytes[second...])
                #expect(three.recorded == whole.recorded, "cuts at \(cut), \(second): \(request.debugDescription)")
            }
        }
    }

    @Test func keepAliveFollowsVersionAndConnection() throws {
        let cases: [(String, Bool)] = [
            ("GET / HTTP/1.1\r\nHost: t\r\n\r\n", true),
            ("GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", false),
            ("GET / HTTP/1.1\r\nHost: t\r\nconnection: Keep-Alive, CLOSE\r\n\r\n", false),
            ("GET / HTTP/1.0\r\n\r\n", false),
            ("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true),
        ]
        for (text, keepAlive) in cases {
            var driver = Driver()
            try driver.feed(text)
            #expect(driver.heads.first?.keepAlive == keepAlive, "\(text.debugDescription)")
        }
    }

    @Test func methodsAndFieldEdits() throws {
        for (method, idempotent) in [("GET", true), ("HEAD", true), ("OPTIONS", true), ("PUT", true), ("DELETE", true),
                                     ("TRACE", true), ("POST", false), ("PATCH", false), ("get", false), ("X-CUSTOM", false)] {
            let head = ClientRequestHead.parsing(method: method)
            #expect(head.isIdempotent == idempotent, "\(method)")
            #expect(head.isHEAD == (method == "HEAD") && !head.isCONNECT)
        }
        #expect(ClientRequestHead.parsing(method: "CONNECT", target: "example.com:443").isCONNECT)
        for field in ["Connection", "Keep-Alive", "Proxy-Connection", "TE", "Trailer", "Upgrade",
                      "X-Forwarded-For", "x-forwarded-proto", "FORWARDED"] {
            #expect(ClientRequestHead.parsing(headers: [(field, "x")]).needsFieldEdits, "\(field)")
        }
        #expect(!ClientRequestHead.parsing(headers: [("X-Forwarded", "x"), ("Cookie", "a=b")]).needsFieldEdits)
        // Expect: 100-continue counts only on an HTTP/1.1 request with a body.
        #expect(ClientRequestHead.parsing(method: "POST", headers: [("Expect", "100-Continue"), ("Content-Length", "1")]).expectsContinue)
        #expect(ClientRequestHead.parsing(method: "PUT", headers: [("expect", "100-continue"), ("Transfer-Encoding", "chunked")]).expectsContinue)
        #expect(!ClientRequestHead.parsing(headers: [("Expect", "100-continue")]).expectsContinue)
        #expect(!ClientRequestHead.parsing(method: "POST", headers: [("Expect", "100-continue"), ("Content-Length", "1")], http10: true).expectsContinue)
        #expect(!ClientRequestHead.parsing(method: "POST", headers: [("Expect", "something"), ("Content-Length", "1")]).expectsContinue)
    }

    /// A protocol switch counts only as RFC 9110 §7.8 has it (HTTP/1.1, `upgrade` in Connection, one Upgrade
    /// field) and without a body (whose end would otherwise be where the new protocol begins).
    @Test func anUpgradeRequestIsRecognisedOnlyWhenWellFormed() {
        let asks = ClientRequestHead.parsing(headers: [("Connection", "keep-alive, Upgrade"), ("Upgrade", "websocket")])
        #expect(asks.upgrade.map { asks.text($0) } == "websocket")
        #expect(asks.needsFieldEdits)
        let notAsking: [(String, [(String, String)], Bool)] = [
            ("GET", [("Upgrade", "websocket")], false),  // Connection does not name it
            ("GET", [("Connection", "upgrade")], false),  // nothing to switch to
            ("GET", [("Connection", "upgrade"), ("Upgrade", "websocket"), ("Upgrade", "h2c")], false),
            ("GET", [("Connection", "Upgrade, HTTP2-Settings"), ("Upgrade", "H2C"), ("HTTP2-Settings", "AAMAAABkAAQAAP__")], false),  // deprecated h2c
            ("GET", [("Connection", "upgrade"), ("Upgrade", "websocket")], true),  // HTTP/1.0
            ("POST", [("Connection", "upgrade"), ("Upgrade", "websocket"), ("Content-Length", "3")], false),
            ("POST", [("Connection", "upgrade"), ("Upgrade", "websocket"), ("Transfer-Encoding", "chunked")], false),
        ]
        for (method, headers, http10) in notAsking {
            #expect(ClientRequestHead.parsing(method: method, headers: headers, http10: http10).upgrade == nil, "\(method) \(headers)")
        }
    }

    /// Each must be refused with the status NIO's parser (llhttp, strict) and the proxy's checks gave it, or one
    /// as strict: smuggling vectors, bad tokens, bare CR and LF, obsolete folding.
    /// An absolute-form target becomes origin-form with `Host` from its authority (RFC 9112 §3.2.2), so the keys,
    /// the access log and the backend all read one request; other targets are left as they are.
    @Test func anAbsoluteFormTargetBecomesOriginFormWithItsHost() throws {
        let cases: [(String, String)] = [
            ("GET http://Shop.Example:8080/cart?x=1 HTTP/1.1\r\nHost: other\r\nAccept: */*\r\n\r\n",
             "GET /cart?x=1 HTTP/1.1\r\nHost: Shop.Example:8080\r\nAccept: */*\r\n\r\n"),
            ("GET HTTPS://a.example HTTP/1.0\r\n\r\n", "GET / HTTP/1.0\r\nHost: a.example\r\n\r\n"),
            ("GET http://a.example?q=1 HTTP/1.1\r\nX-A: 1\r\nhost: b\r\n\r\n",
             "GET /?q=1 HTTP/1.1\r\nHost: a.example\r\nX-A: 1\r\n\r\n"),
            ("CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n", "CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n"),
            ("OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n", "OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n"),
        ]
        for (sent, expected) in cases {
            var driver = Driver()
            try driver.feed(sent)
            #expect(driver.recorded.first == .head(expected), "\(sent.debugDescription)")
        }
        let head = ClientRequestHead.parsing(target: "http://b.example/p/q?sid=7")
        #expect(head.text(head.target) == "/p/q?sid=7")
        // (Absolute-form targets that are malformed — another scheme, no authority, user@ — are in
        // malformedRequestsAreErrors.)
        // Mutated absolute-form heads never trap, and none goes on with an absolute target.
        var random = SplitMix64(seed: 7)
        let sample = Array("GET http://a.example:81/x?sid=1 HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n\r\n".utf8)
        for _ in 0..<3000 {
            var bytes = sample
            for _ in 0..<(1 + Int(random.next() % 3)) {
                bytes[Int(random.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: random.next())
            }
            var driver = Driver()
            do {
                try driver.feed(bytes: bytes)
            } catch {
                #expect([.badRequest, .requestHeaderFieldsTooLarge, .httpVersionNotSupported].contains(error.responseStatus))
                continue
            }
            for head in driver.heads {
                let target = head.text(head.target).lowercased()
                #expect(!target.hasPrefix("http://") && !target.hasPrefix("https://"), "\(target)")
            }
        }
    }

    /// What stays accepted by the strict framing reading: `chunked` in any case, BWS before an extension or the CR
    /// of a size line, 16 hex digits, and ordinary trailers.
    @Test func plainChunkedFramingStillPasses() throws {
        var driver = Driver()
        let body = "5 ;ext=1\r\nhello\r\n0000000000000003\r\nabc\r\n2\t\r\nde\r\n0\r\nX-Checksum: abc\r\nServer-Timing: x\r\n\r\n"
        try driver.feed("POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: Chunked\r\n\r\n" + body)
        #expect(driver.recorded.last == .end, "\(driver.recorded)")
        #expect(driver.recorded.contains(.body(body, payload: 10)), "\(driver.recorded)")
    }

    @Test func malformedRequestsAreErrors() {
        let bad: [(String, HTTPRequestFramerError)] = [
            ("GET  / HTTP/1.1\r\nHost: t\r\n\r\n", .malformedRequestLine),
            ("GET / HTTP/1.1 \r\nHost: t\r\n\r\n", .malformedRequestLine),
            ("G(T / HTTP/1.1\r\nHost: t\r\n\r\n", .malformedRequestLine),
            ("GET /a\u{01}b HTTP/1.1\r\nHost: t\r\n\r\n", .malformedRequestLine),
            ("GET / http/1.1\r\nHost: t\r\n\r\n", .malformedRequestLine),
            ("GET / HTTP/1.1\nHost: t\r\n\r\n", .malformedHeader),
            ("GET / HTTP/1.1\rHost: t\r\n\r\n", .malformedRequestLine),
            ("\u{01}\u{02}garbage\r\n\r\n", .malformedRequestLine),
            // A fragment is the client's own (RFC 9112 §3.2); over HTTP/2 the stream is reset for it.
            ("GET /cart#evil HTTP/1.1\r\nHost: t\r\n\r\n", .fragmentInTarget),
            ("GET /a?x=1#/../admin HTTP/1.1\r\nHost: t\r\n\r\n", .fragmentInTarget),
            ("GET http://a.example/#x HTTP/1.1\r\nHost: t\r\n\r\n", .fragmentInTarget),
            ("GET # HTTP/1.1\r\nHost: t\r\n\r\n", .fragmentInTarget),
            ("GET / HTTP/2.0\r\nHost: t\r\n\r\n", .unsupportedVersion),
            ("GET / HTTP/1.2\r\nHost: t\r\n\r\n", .unsupportedVersion),
            ("GET / HTTP/1.1\r\nHost: t\r\nNo-Colon\r\n\r\n", .malformedHeader),
            ("GET / HTTP/1.1\r\nHost: t\r\nSpace : before colon\r\n\r\n", .malformedHeader),
            ("GET / HTTP/1.1\r\nHost: t\r\nBad Header\r\n\r\n", .malformedHeader),
            ("GET / HTTP/1.1\r\nHost: t\r\nX-(A): 1\r\n\r\n", .malformedHeader),
            ("GET / HTTP/1.1\r\nHost: t\r\n: empty name\r\n\r\n", .malformedHeader),
            ("GET / HTTP/1.1\r\nHost: t\r\nX-A: 1\r\n folded\r\n\r\n", .malformedHeader),
            ("GET / HTTP/1.1\r\nHost: t\r\nX-A: nul\u{00}byte\r\n\r\n", .malformedHeader),
            ("GET / HTTP/1.1\r\nHost: t\r\nX-A: bare\rcr\r\n\r\n", .malformedHeader),
            ("GET / HTTP/1.1\r\nHost: t\r\nX-A: bare\nlf\r\n\r\n", .malformedHeader),
            ("GET / HTTP/1.1\r\nHost: t\r\n\n", .malformedHeader),
            ("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n", .invalidContentLength),
            ("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n", .invalidContentLength),
            ("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: +5\r\n\r\n", .invalidContentLength),
            ("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5, 5\r\n\r\n", .invalidContentLength),
            ("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", .invalidContentLength),
            ("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\ncontent-length: 2\r\n\r\n", .invalidContentLength),
            ("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999999999999999\r\n\r\n", .invalidContentLength),
            ("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", .ambiguousFraming),
            ("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", .ambiguousFraming),
            ("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", .ambiguousFraming),
            ("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n", .ambiguousFraming),
            ("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", .ambiguousFraming),
            ("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: \r\n\r\n", .ambiguousFraming),
            ("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: xchunked\r\n\r\n", .ambiguousFraming),
            ("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", .ambiguousFraming),
            ("GET / HTTP/1.1\r\n\r\n", .invalidHost),
            ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", .invalidHost),
            ("GET ftp://a.example/ HTTP/1.1\r\nHost: t\r\n\r\n", .malformedRequestLine),
            ("GET http:///x HTTP/1.1\r\nHost: t\r\n\r\n", .invalidHost),
            ("GET http://user@a.example/ HTTP/1.1\r\nHost: t\r\n\r\n", .invalidHost),
            // A Host value that is not uri-host [":" port] (RFC 9112 §3.2): a backend would read it another way.
            ("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", .invalidHost),
            ("GET / HTTP/1.1\r\nHost: evil.example/path\r\n\r\n", .invalidHost),
            ("GET / HTTP/1.1\r\nHost: user@evil.example\r\n\r\n", .invalidHost),
            ("GET / HTTP/1.1\r\nHost: a.example:99999\r\n\r\n", .invalidHost),
            ("GET / HTTP/1.1\r\nHost: a.example:8x\r\n\r\n", .invalidHost),
            ("GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", .invalidHost),
            ("GET / HTTP/1.1\r\nHost: []\r\n\r\n", .invalidHost),
            ("GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n", .invalidHost),
            // Bracketed, but neither an IPv6 address nor IPvFuture (before 2026-12-03 these passed).
            ("GET / HTTP/1.1\r\nHost: [vvvv]\r\n\r\n", .invalidHost),
            ("GET / HTTP/1.1\r\nHost: [1:2]\r\n\r\n", .invalidHost),
            ("GET / HTTP/1.1\r\nHost: [::1::2]\r\n\r\n", .invalidHost),
            ("GET / HTTP/1.1\r\nHost: [v1.]\r\n\r\n", .invalidHost),
            ("GET / HTTP/1.1\r\nHost: [v.x]\r\n\r\n", .invalidHost),
            ("GET / HTTP/1.1\r\nHost: [fe80::1%25eth0]\r\n\r\n", .invalidHost),
            ("GET http://[vvvv]/ HTTP/1.1\r\nHost: t\r\n\r\n", .invalidHost),
            // Absolute-form still needs exactly one Host in HTTP/1.1 (RFC 9112 §3.2; before 2026-12-03 it was given one).
            ("GET http://a.example/ HTTP/1.1\r\n\r\n", .invalidHost),
            ("GET http://a.example/ HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", .invalidHost),
            ("GET / HTTP/1.1\r\nHost: caf\u{E9}.example\r\n\r\n", .invalidHost),
            ("GET http://a b/ HTTP/1.1\r\nHost: t\r\n\r\n", .malformedRequestLine),
            // Asterisk-form is for OPTIONS only, authority-form for CONNECT only (RFC 9112 §3.2.3, §3.2.4).
            ("GET * HTTP/1.1\r\nHost: t\r\n\r\n", .malformedRequestLine),
            ("GET example.com:80 HTTP/1.1\r\nHost: t\r\n\r\n", .malformedRequestLine),
            ("GET cart HTTP/1.1\r\nHost: t\r\n\r\n", .malformedRequestLine),
            ("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", .malformedChunk),
            ("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\r\n", .malformedChunk),
            ("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX", .malformedChunk),
            ("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc", .malformedChunk),
            ("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n", .malformedChunk),
            ("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n1ffffffffffffffff\r\n", .malformedChunk),
            ("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n:bad trailer\r\n\r\n", .malformedChunk),
            ("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\rX", .malformedChunk),
            // Smuggling (2026-12-03): Transfer-Encoding values the list reading took as chunked while a backend
            // reading the field literally saw no body, so the chunk data became a request of its own.
            ("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked;q=1\r\n\r\n", .ambiguousFraming),
            ("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked garbage\r\n\r\n", .ambiguousFraming),
            ("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked,\r\n\r\n", .ambiguousFraming),
            ("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: ,chunked\r\n\r\n", .ambiguousFraming),
            ("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: identity, chunked\r\n\r\n", .ambiguousFraming),
            ("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", .ambiguousFraming),
            ("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding:\r\n\r\n", .ambiguousFraming),
            // A size line is digits, then BWS and `;` extensions or the CR: `ACE /admin HTTP/1.1` was 0xACE bytes.
            ("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nACE /admin HTTP/1.1\r\n", .malformedChunk),
            ("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5 garbage\r\nhello\r\n0\r\n\r\n", .malformedChunk),
            ("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n00000000000000005\r\nhello\r\n0\r\n\r\n", .malformedChunk),
            // Trailers are `name: value` lines, and none that frames or routes the message.
            ("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nnocolonhere\r\n\r\n", .malformedChunk),
            ("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nGET /smug HTTP/1.1\r\n\r\n", .malformedChunk),
            ("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nContent-Length: 50\r\n\r\n", .malformedChunk),
            ("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-A: 1\r\nHOST: evil\r\n\r\n", .malformedChunk),
            ("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n", .malformedChunk),
            ("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n", .malformedChunk),
            ("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\ncookie: sid=99\r\n\r\n", .malformedChunk),
        ]
        for (text, error) in bad {
            var driver = Driver()
            #expect(throws: error, "\(text.debugDescription)") { try driver.feed(text) }
            #expect(error.responseStatus == (error == .unsupportedVersion ? .httpVersionNotSupported : .badRequest))
            // Once broken, nothing more on the connection is understood.
            let before = driver.recorded
            #expect(throws: Never.self) { try driver.feed(Self.get) }
            #expect(driver.recorded == before)
        }
        // Every split finds the same error (a bare LF is refused as soon as it arrives).
        for (text, error) in bad {
            let bytes = Array(text.utf8)
            var single = Driver()
            #expect(throws: error, "byte by byte: \(text.debugDescription)") {
                for byte in bytes { try single.feed(bytes: [byte]) }
            }
        }
    }

    @Test func headSizeAndFieldCountLimitsAre431() throws {
        let limits = HTTPRequestFramer.Limits(maxHeadBytes: 64, maxHeaderCount: 2)
        var large = Driver(limits: limits)
        // Refused as soon as more than the limit has arrived without the head's end, even a byte at a time.
        for byte in "GET / HTTP/1.1\r\nHost: t\r\nX-Long: \(String(repeating: "v", count: 30))".utf8 {
            try large.feed(bytes: [byte])
        }
        #expect(throws: HTTPRequestFramerError.headTooLarge(limit: 64)) { try large.feed(String(repeating: "v", count: 30)) }
        #expect(HTTPRequestFramerError.headTooLarge(limit: 64).responseStatus == .requestHeaderFieldsTooLarge)
        var many = Driver(limits: limits)
        #expect(throws: HTTPRequestFramerError.tooManyHeaders(limit: 2)) { try many.feed("GET / HTTP/1.1\r\nHost: t\r\nB: 2\r\nC: 3\r\n\r\n") }
        #expect(HTTPRequestFramerError.tooManyHeaders(limit: 2).responseStatus == .requestHeaderFieldsTooLarge)
        var fits = Driver(limits: limits)
        try fits.feed("GET / HTTP/1.1\r\nHost: t\r\nA: 1\r\n\r\n")
        #expect(fits.recorded.last == .end)
    }

    // MARK: Forwarding

    @Test func anUneditedHeadGoesOutAsItCameWithTheForwardingFields() {
        let forwarding = RequestForwarding(peer: ClientAddress(parsing: "10.0.0.7"), isTrustedPeer: false)
        let head = ClientRequestHead.parsing(target: "/x?y=1", headers: [("Cookie", "sid=1"), ("X-Mixed-Case", "Kept")])
        let out = forwarding.head(for: head, allocator: ByteBufferAllocator())
        #expect(String(buffer: out.prefix) + String(buffer: out.suffix) == "GET /x?y=1 HTTP/1.1\r\nHost: test\r\nCookie: sid=1\r\nX-Mixed-Case: Kept\r\n"
            + "x-forwarded-for: 10.0.0.7\r\nx-forwarded-proto: http\r\nforwarded: for=10.0.0.7;proto=http\r\n\r\n")
        // The client's bytes are not copied: the prefix is a slice of them.
        let start = { (buffer: ByteBuffer) in buffer.withUnsafeReadableBytes { $0.baseAddress } }
        #expect(start(out.prefix) == start(head.bytes))
        let old = forwarding.head(for: ClientRequestHead.parsing(http10: true), allocator: ByteBufferAllocator())
        #expect(String(buffer: old.suffix).hasSuffix("connection: keep-alive\r\n\r\n"))
        let v6 = RequestForwarding(peer: ClientAddress(parsing: "::1"), isTrustedPeer: false)
        #expect(v6.forwardedElement == "for=\"[::1]\";proto=http")
    }

    @Test func hopByHopFieldsGoAndForwardingFieldsAreReplacedOrExtended() {
        let head = ClientRequestHead.parsing(headers: [
            ("Connection", "X-Private, close"), ("X-Private", "1"), ("KEEP-ALIVE", "timeout=5"), ("Upgrade", "h2c"),
            ("TE", "trailers"), ("Proxy-Connection", "x"), ("Trailer", "y"), ("Content-Length", "3"),
            ("X-Forwarded-For", "203.0.113.9"), ("X-Forwarded-For", "10.9.9.9"), ("X-Forwarded-Proto", "https"),
            ("Forwarded", "for=203.0.113.9"), ("X-Other", "kept"),
        ])
        let untrusted = RequestForwarding(peer: ClientAddress(parsing: "192.0.2.1"), isTrustedPeer: false)
        let replaced = untrusted.head(for: head, allocator: ByteBufferAllocator())
        #expect(String(buffer: replaced.prefix) + String(buffer: replaced.suffix) == "GET / HTTP/1.1\r\nHost: test\r\nContent-Length: 3\r\n"
            + "X-Other: kept\r\nx-forwarded-for: 192.0.2.1\r\nx-forwarded-proto: http\r\nforwarded: for=192.0.2.1;proto=http\r\n\r\n")
        let trusted = RequestForwarding(peer: ClientAddress(parsing: "10.0.0.1"), isTrustedPeer: true)
        let extended = trusted.head(for: head, allocator: ByteBufferAllocator())
        #expect(String(buffer: extended.prefix) + String(buffer: extended.suffix) == "GET / HTTP/1.1\r\nHost: test\r\nContent-Length: 3\r\n"
            + "X-Forwarded-Proto: https\r\nX-Other: kept\r\nx-forwarded-for: 203.0.113.9, 10.9.9.9, 10.0.0.1\r\n"
            + "forwarded: for=203.0.113.9, for=10.0.0.1;proto=http\r\n\r\n")
        // Connection may not take the framing fields with it.
        let framing = ClientRequestHead.parsing(method: "POST", headers: [("Connection", "content-length"), ("Content-Length", "2")])
        #expect(String(buffer: untrusted.head(for: framing, allocator: ByteBufferAllocator()).prefix).contains("Content-Length: 2\r\n"))
    }

    /// X-Real-IP, X-Forwarded-Host and X-Forwarded-Port, which the proxy does not set: a client's own are
    /// removed (a backend trusting the proxy would take them for the proxy's word), a trusted proxy's pass.
    @Test func relayedClientFieldsPassOnlyFromATrustedPeer() {
        let head = ClientRequestHead.parsing(headers: [
            ("X-Real-IP", "6.6.6.6"), ("x-forwarded-host", "evil.example"), ("X-Forwarded-Port", "8443"), ("X-Other", "kept"),
        ])
        #expect(head.needsFieldEdits)
        let untrusted = RequestForwarding(peer: ClientAddress(parsing: "192.0.2.1"), isTrustedPeer: false)
        let removed = untrusted.head(for: head, allocator: ByteBufferAllocator())
        #expect(String(buffer: removed.prefix) + String(buffer: removed.suffix) == "GET / HTTP/1.1\r\nHost: test\r\nX-Other: kept\r\n"
            + "x-forwarded-for: 192.0.2.1\r\nx-forwarded-proto: http\r\nforwarded: for=192.0.2.1;proto=http\r\n\r\n")
        let trusted = RequestForwarding(peer: ClientAddress(parsing: "10.0.0.1"), isTrustedPeer: true)
        let kept = trusted.head(for: head, allocator: ByteBufferAllocator())
        #expect(String(buffer: kept.prefix) + String(buffer: kept.suffix) == "GET / HTTP/1.1\r\nHost: test\r\nX-Real-IP: 6.6.6.6\r\n"
            + "x-forwarded-host: evil.example\r\nX-Forwarded-Port: 8443\r\nX-Other: kept\r\n"
            + "x-forwarded-for: 10.0.0.1\r\nx-forwarded-proto: http\r\nforwarded: for=10.0.0.1;proto=http\r\n\r\n")
        // Names that only begin the same stay.
        let similar = ClientRequestHead.parsing(headers: [("X-Real-IPs", "1"), ("X-Forwarded-Hosts", "2")])
        #expect(!similar.needsFieldEdits)
    }

    @Test func aClientCertificateIsForwardedAndAClientsOwnFieldNeverIs() {
        let mine = "Hash=ab;Subject=\"CN=me\""
        let plain = ClientRequestHead.parsing(headers: [("X-Other", "kept")])
        let sent = ClientRequestHead.parsing(headers: [("X-Forwarded-Client-Cert", "Hash=cd;Subject=\"CN=edge\""), ("X-Other", "kept")])
        func text(_ forwarding: RequestForwarding, _ head: ClientRequestHead) -> String {
            let out = forwarding.head(for: head, allocator: ByteBufferAllocator())
            return String(buffer: out.prefix) + String(buffer: out.suffix)
        }
        let untrusted = RequestForwarding(peer: ClientAddress(parsing: "192.0.2.1"), isTrustedPeer: false, scheme: "https", clientCertificate: mine)
        #expect(text(untrusted, plain).hasSuffix("forwarded: for=192.0.2.1;proto=https\r\nx-forwarded-client-cert: \(mine)\r\n\r\n"))
        // An untrusted client's own field is dropped, with or without a certificate of its own.
        #expect(!text(untrusted, sent).contains("CN=edge"))
        #expect(text(untrusted, sent).contains("x-forwarded-client-cert: \(mine)\r\n"))
        #expect(!text(RequestForwarding(peer: ClientAddress(parsing: "192.0.2.1"), isTrustedPeer: false), sent).lowercased().contains("x-forwarded-client-cert"))
        // A trusted proxy's element is kept, this hop's appended.
        let trusted = RequestForwarding(peer: ClientAddress(parsing: "10.0.0.1"), isTrustedPeer: true, scheme: "https", clientCertificate: mine)
        #expect(text(trusted, sent).contains("x-forwarded-client-cert: Hash=cd;Subject=\"CN=edge\",\(mine)\r\n"))
    }

    // MARK: Garbage

    /// Mutated and truncated requests, split at random places: the framer reports an error (400, 431 or 505) or
    /// parts, never traps or loops, and what it forwards is always the bytes it was given, in order; the key and
    /// forwarding scans read every head it accepted without trapping.
    @Test func garbageNeverTrapsAndForwardedBytesAreTheInput() throws {
        var random = SplitMix64(seed: 42)
        let samples = [Self.get, Self.post, Self.chunked, Self.http10, Self.pipelined,
                       "POST /q?u=1&v HTTP/1.1\r\nHost: t\r\nConnection: keep-alive, X-A\r\nX-A: 1\r\nX-Forwarded-For: 1.2.3.4\r\n"
                       + "Cookie: a=1; sid=x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"]
        let extractor = RequestKeyExtractor(chain: try KeyChain(parsing: "cookie:sid,header:x-a,query:u,path,ip"),
                                            trustedProxies: [try AddressPrefix(parsing: "127.0.0.0/8")])
        let peer = ClientAddress(parsing: "127.0.0.1")
        let forwarding = RequestForwarding(peer: peer, isTrustedPeer: true)
        var accepted = 0
        for round in 0..<3000 {
            var bytes = Array(samples[round % samples.count].utf8)
            for _ in 0..<Int(random.next() % 4) {
                bytes[Int(random.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: random.next())
            }
            if random.next() % 4 == 0 { bytes.removeLast(Int(random.next() % UInt64(bytes.count))) }
            var driver = Driver(limits: .init(maxHeadBytes: 160 + Int(random.next() % 200), maxHeaderCount: 3 + Int(random.next() % 6)))
            var offset = 0
            do {
                while offset < bytes.count {
                    let length = 1 + Int(random.next() % UInt64(bytes.count - offset))
                    try driver.feed(bytes: bytes[offset..<(offset + length)])
                    offset += length
                }
            } catch {
                #expect([.badRequest, .requestHeaderFieldsTooLarge, .httpVersionNotSupported].contains(error.responseStatus))
                continue
            }
            accepted += 1
            for head in driver.heads {
                _ = extractor.keyHash(for: head, peer: peer)
                let out = forwarding.head(for: head, allocator: ByteBufferAllocator())
                #expect(String(buffer: out.suffix.readableBytes > 0 ? out.suffix : out.prefix).hasSuffix("\r\n\r\n"))
            }
            // Only empty lines before a request are dropped: what is forwarded, then what waits for more, is the
            // input in order without some CRLF pairs.
            let kept = driver.forwarded + (driver.partial.map { Array($0.readableBytesView) } ?? [])
            var next = kept.startIndex
            for byte in bytes where next < kept.endIndex && kept[next] == byte { next += 1 }
            #expect(next == kept.endIndex && (bytes.count - kept.count) % 2 == 0, "round \(round)")
        }
        #expect(accepted > 100, "the mutations leave some requests intact")
    }
}
