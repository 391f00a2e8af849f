import ConcordSessionsTesting
import NIOCore
import NIOHTTP1
import Testing

@testable import ConcordProxy

@Suite(.timeLimit(.minutes(3))) struct HTTPResponseFramerTests {
    /// What the framer reported, with the bytes as text; consecutive body parts are merged (how a body is split
    /// depends on how it arrived).
    enum Recorded: Equatable, CustomStringConvertible {
        case head(String)
        case body(String)
        case end

        var description: String {
            switch self {
            case .head(let text): "head(\(text.debugDescription))"
            case .body(let text): "body(\(text.debugDescription))"
            case .end: "end"
            }
        }
    }

    /// Feeds bytes to a framer as ``BackendHTTPHandler`` does: what is not consumed (a head in progress) goes in
    /// front of the next bytes.
    struct Driver {
        var framer: HTTPResponseFramer
        var partial: ByteBuffer?
        var recorded: [Recorded] = []
        var heads: [BackendResponseHead] = []
        /// How many responses came as one `.headAndBody` part (head and whole body in one slice).
        var wholeParts = 0
        /// Every byte handed on (heads and bodies), exactly.
        var forwarded: [UInt8] = []

        init(limits: HTTPResponseFramer.Limits = .init(maxHeadBytes: 4096, maxHeaderCount: 20),
             isHEAD: Bool = false, isHTTP10: Bool = false) {
            framer = HTTPResponseFramer(limits: limits)
            framer.requestSent(isHEAD: isHEAD, isHTTP10: isHTTP10)
        }

        mutating func feed(_ text: String) throws(HTTPResponseFramerError) {
            try feed(bytes: Array(text.utf8))
        }

        mutating func feed(bytes input: some Collection<UInt8>) throws(HTTPResponseFramerError) {
            var bytes = ByteBuffer(bytes: input)
            if var head = partial {
                partial = nil
                head.writeBuffer(&bytes)
                bytes = head
            }
            while let part = try framer.next(&bytes) { record(part) }
            if bytes.readableBytes > 0 { partial = bytes }
        }

        mutating func close() {
            if let part = framer.inputClosed() { record(part) }
        }

        private mutating func record(_ part: HTTPResponseFramer.Part) {
            switch part {
            case .head(let head):
                heads.append(head)
                forwarded += head.bytes.readableBytesView
                recorded.append(.head(String(buffer: head.bytes)))
            case .headAndBody(let head, let bytes):
                // Recorded as the head and the body it holds, so every split compares equal.
                wholeParts += 1
                #expect(bytes.readableBytesView.starts(with: head.bytes.readableBytesView))
                record(.head(head))
                forwarded.removeLast(head.bytes.readableBytes)
                forwarded += bytes.readableBytesView
                recordBody(bytes.getSlice(at: bytes.readerIndex + head.bytes.readableBytes, length: bytes.readableBytes - head.bytes.readableBytes)!)
            case .body(let bytes):
                forwarded += bytes.readableBytesView
                recordBody(bytes)
            case .end:
                recorded.append(.end)
            case .switched(let head):
                heads.append(head)
                recorded.append(.head(String(buffer: head.bytes)))
            case .interim(let head):
                Issue.record("an interim head was reported by a framer that drops them: \(String(buffer: head.bytes))")
            }
        }

        private mutating func recordBody(_ bytes: ByteBuffer) {
            if case .body(let before) = recorded.last {
                recorded[recorded.count - 1] = .body(before + String(buffer: bytes))
            } else {
                recorded.append(.body(String(buffer: bytes)))
            }
        }
    }

    static let contentLength = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Mixed-Case: Kept\r\n\r\nhello"
    static let chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + "5;name=value;flag\r\nhello\r\n" + "A \r\n0123456789\r\n" + "0\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n"
    static let interimThenFinal = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n" + contentLength

    @Test func contentLengthBodyIsForwardedAsItCame() throws {
        var driver = Driver()
        try driver.feed(Self.contentLength)
        #expect(driver.recorded == [
            .head("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Mixed-Case: Kept\r\n\r\n"), .body("hello"), .end,
        ])
        let head = try #require(driver.heads.first)
        #expect(head.status == 200 && head.isHTTP11 && head.keepAlive && !head.hasHopByHopFields)
        #expect(head.framing == .contentLength(5))
        #expect(driver.framer.isAwaitingRequest)
        #expect(driver.forwarded == Array(Self.contentLength.utf8))
    }

    /// A head and its whole fixed-length body in one read come as one part: one slice to forward in one write.
    /// When the body arrives after the head, they come as a head and body parts.
    @Test func aWholeFixedLengthResponseIsOnePart() throws {
        var whole = Driver()
        try whole.feed(Self.contentLength)
        #expect(whole.wholeParts == 1)
        let bytes = Array(Self.contentLength.utf8)
        let headLength = bytes.count - "hello".utf8.count
        for cut in 1..<bytes.count {
            var split = Driver()
            try split.feed(bytes: bytes[..<cut])
            try split.feed(bytes: bytes[cut...])
            // A head cut short waits for the rest, which brings the body with it.
            #expect(split.wholeParts == (cut < headLength ? 1 : 0), "cut at \(cut)")
            #expect(split.recorded == whole.recorded && split.forwarded == bytes, "cut at \(cut)")
        }
        // Bytes after the body stay in the buffer for the next step (here: unexpected bytes, an error).
        var extra = Driver()
        #expect(throws: HTTPResponseFramerError.self) { try extra.feed(Self.contentLength + "X") }
        #expect(extra.wholeParts == 1 && extra.recorded.last == .end)
        // No body (204, HEAD, Content-Length: 0) is a head part only.
        var empty = Driver()
        try empty.feed("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        #expect(empty.wholeParts == 0 && empty.recorded.count == 2)
    }

    @Test func chunkedBodyWithExtensionsAndTrailersKeepsItsFraming() throws {
        var driver = Driver()
        try driver.feed(Self.chunked)
        let headText = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        #expect(driver.recorded == [.head(headText), .body(String(Self.chunked.dropFirst(headText.count))), .end])
        #expect(driver.heads.first?.framing == .chunked)
        #expect(driver.heads.first?.keepAlive == true)
        // A plain list of codings ending in chunked stays a backend's right.
        var gzip = Driver()
        try gzip.feed("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip ,  chunked\r\n\r\n0\r\n\r\n")
        #expect(gzip.heads.first?.framing == .chunked && gzip.recorded.last == .end, "\(gzip.recorded)")
    }

    @Test func everySplitGivesTheSameParts() throws {
        for response in [Self.contentLength, Self.chunked, Self.interimThenFinal] {
            var whole = Driver()
            try whole.feed(response)
            let bytes = Array(response.utf8)
            // Byte by byte…
            var single = Driver()
            for byte in bytes { try single.feed(String(decoding: [byte], as: UTF8.self)) }
            #expect(single.recorded == whole.recorded, "byte by byte: \(response.debugDescription)")
            // …and in two pieces at every boundary.
            for cut in 1..<bytes.count {
                var split = Driver()
                try split.feed(String(decoding: bytes[..<cut], as: UTF8.self))
                try split.feed(String(decoding: bytes[cut...], as: UTF8.self))
                #expect(split.recorded == whole.recorded, "cut at \(cut): \(response.debugDescription)")
            }
        }
    }

    @Test func interimResponsesAreDroppedAndTheFinalOneFollows() throws {
        var driver = Driver()
        try driver.feed(Self.interimThenFinal)
        #expect(driver.recorded == [
            .head("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Mixed-Case: Kept\r\n\r\n"), .body("hello"), .end,
        ])
    }

    /// The chunk scanner reports the chunk data and the trailer field lines (the HTTP/2 bridge's DATA and trailing
    /// HEADERS) the same however the body is split: in two at every point, and byte by byte.
    @Test func theChunkScannerReportsDataAndTrailersWhateverTheSplit() {
        let body = Array("4\r\nabcd\r\n3;ext=1\r\nefg\r\n0\r\nX-A: 1\r\nX-B: 2\r\n\r\n".utf8)
        func scanned(_ pieces: [ArraySlice<UInt8>]) -> (data: String, trailers: String, complete: Bool) {
            var scanner = ChunkedBodyScanner(maxLineBytes: 100)
            var data: [UInt8] = [], trailers: [UInt8] = []
            for piece in pieces {
                piece.withUnsafeBytes { p in
                    _ = scanner.scan(p, data: { data += p[$0] }, trailers: { trailers += p[$0] })
                }
            }
            return (String(decoding: data, as: UTF8.self), String(decoding: trailers, as: UTF8.self), scanner.isComplete)
        }
        var splits = (0...body.count).map { [body[..<$0], body[$0...]] }
        splits.append(body.indices.map { body[$0...$0] })
        for pieces in splits {
            let result = scanned(pieces)
            #expect(result.data == "abcdefg" && result.trailers == "X-A: 1\r\nX-B: 2\r\n" && result.complete,
                    "\(pieces.map(\.count)): \(result)")
        }
    }

    /// Asked to (the HTTP/2 bridge), the framer reports each interim head before the final one.
    @Test func interimResponsesAreReportedWhenAskedFor() throws {
        var framer = HTTPResponseFramer(limits: .init(maxHeadBytes: 4096, maxHeaderCount: 20), reportsInterim: true)
        framer.requestSent(isHEAD: false, isHTTP10: false)
        var bytes = ByteBuffer(string: Self.interimThenFinal)
        var statuses: [String] = []
        while let part = try framer.next(&bytes) {
            switch part {
            case .interim(let head): statuses.append("interim \(head.status)")
            case .headAndBody(let head, _), .head(let head): statuses.append("final \(head.status)")
            case .body: statuses.append("body")
            case .end: statuses.append("end")
            case .switched: statuses.append("switched")
            }
        }
        #expect(statuses == ["interim 100", "interim 103", "final 200", "end"])
    }

    @Test func noBodyAfter204And304AndForHEAD() throws {
        for status in ["204 No Content", "304 Not Modified"] {
            var driver = Driver()
            // A length on these describes another response; no body follows.
            try driver.feed("HTTP/1.1 \(status)\r\nContent-Length: 10\r\n\r\n")
            #expect(driver.recorded.count == 2 && driver.recorded.last == .end, "\(status): \(driver.recorded)")
            // A 304's length is allowed (that of the 200 it stands for); a 204's is not, and its backend may send
            // the body it announced, so that connection is not used again.
            #expect(driver.heads.first?.keepAlive == status.hasPrefix("304"), "\(status)")
        }
        var both = Driver()
        try both.feed("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n")
        #expect(both.recorded.count == 2 && both.heads.first?.dropsFramingFields == true && both.heads.first?.keepAlive == false)
        var head = Driver(isHEAD: true)
        try head.feed("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
        #expect(head.recorded == [.head("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"), .end])
        var zero = Driver()
        try zero.feed("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        #expect(zero.recorded.count == 2 && zero.heads.first?.framing == BackendResponseHead.Framing.none)
    }

    @Test func aBodyWithoutLengthEndsWhenTheBackendCloses() throws {
        var driver = Driver()
        try driver.feed("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nsome")
        try driver.feed(" more")
        #expect(driver.recorded == [.head("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n"), .body("some more")])
        #expect(driver.heads.first?.framing == .untilClose)
        #expect(driver.heads.first?.keepAlive == false)
        driver.close()
        #expect(driver.recorded.last == .end)
        // A close in the middle of a framed body ends nothing: the response is incomplete.
        var cut = Driver()
        try cut.feed("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        cut.close()
        #expect(cut.recorded.last == .body("abc"))
    }

    @Test func keepAliveFollowsVersionAndConnection() throws {
        let cases: [(String, Bool)] = [
            ("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true),
            ("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", false),
            ("HTTP/1.1 200 OK\r\nconnection: Keep-Alive, CLOSE\r\nContent-Length: 0\r\n\r\n", false),
            ("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false),
            ("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", true),
        ]
        for (text, keepAlive) in cases {
            var driver = Driver()
            try driver.feed(text)
            #expect(driver.heads.first?.keepAlive == keepAlive, "\(text.debugDescription)")
        }
    }

    @Test func hopByHopFieldsAreFoundAndRewrittenAway() throws {
        var plain = Driver()
        try plain.feed(Self.contentLength)
        #expect(plain.heads.first?.hasHopByHopFields == false)
        #expect(plain.heads.first?.suitsKeptConnection == true)
        // nginx says `Connection: keep-alive` on every kept HTTP/1.1 response: as true for the client, so it stays.
        var nginx = Driver()
        try nginx.feed("HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok")
        #expect(nginx.heads.first?.hasHopByHopFields == true)
        #expect(nginx.heads.first?.suitsKeptConnection == true)
        for other in ["Connection: close", "Connection: keep-alive, X-Secret", "Keep-Alive: timeout=5", "Upgrade: h2c"] {
            var driver = Driver()
            try driver.feed("HTTP/1.1 200 OK\r\n\(other)\r\nContent-Length: 0\r\n\r\n")
            #expect(driver.heads.first?.suitsKeptConnection == false, "\(other)")
        }
        var http10 = Driver()
        try http10.feed("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n")
        #expect(http10.heads.first?.suitsKeptConnection == false)
        let text = "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s\r\nKeep-Alive: timeout=5\r\n"
            + "Content-Length: 2\r\nx-backend: a\r\nTE: trailers\r\nUpgrade: h2c\r\nProxy-Connection: x\r\nTrailer: y\r\n\r\nok"
        var driver = Driver()
        try driver.feed(text)
        let head = try #require(driver.heads.first)
        #expect(head.hasHopByHopFields)
        let rewritten = head.rewritten(version: .http1_0, adding: [(name: "set-cookie", value: "S=1"), (name: "connection", value: "keep-alive")],
                                       allocator: ByteBufferAllocator())
        #expect(String(buffer: rewritten) == "HTTP/1.0 200 OK\r\nContent-Length: 2\r\nx-backend: a\r\nset-cookie: S=1\r\nconnection: keep-alive\r\n\r\n")
        // Connection may not take the framing fields with it.
        var framing = Driver()
        try framing.feed("HTTP/1.1 200 OK\r\nConnection: content-length\r\nContent-Length: 2\r\n\r\nok")
        let kept = try #require(framing.heads.first).rewritten(version: .http1_1, adding: [], allocator: ByteBufferAllocator())
        #expect(String(buffer: kept) == "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n")
    }

    @Test func malformedResponsesAreErrors() {
        let bad: [(String, HTTPResponseFramerError)] = [
            ("HTTP/2.0 200 OK\r\n\r\n", .malformedStatusLine),
            ("HTTP/1.1 600 Odd\r\n\r\n", .malformedStatusLine),
            ("HTTP/1.1 20 OK\r\n\r\n", .malformedStatusLine),
            ("http/1.1 200 OK\r\n\r\n", .malformedStatusLine),
            ("HTTP/1.1 200 O\u{01}K\r\n\r\n", .malformedStatusLine),
            ("HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n", .malformedHeader),
            ("HTTP/1.1 200 OK\r\nNo-Colon\r\n\r\n", .malformedHeader),
            ("HTTP/1.1 200 OK\r\nSpace : before colon\r\n\r\n", .malformedHeader),
            ("HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\n\r\n", .malformedHeader),
            ("HTTP/1.1 200 OK\r\nX-A: nul\u{00}byte\r\n\r\n", .malformedHeader),
            ("HTTP/1.1 200 OK\r\nX-A: bare\rcr\r\n\r\n", .malformedHeader),
            ("HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n", .invalidContentLength),
            ("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", .invalidContentLength),
            ("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n", .invalidContentLength),
            ("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", .invalidContentLength),
            ("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n", .invalidContentLength),
            ("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", .ambiguousFraming),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", .ambiguousFraming),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", .ambiguousFraming),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: \r\n\r\n", .ambiguousFraming),
            ("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", .ambiguousFraming),
            // Not a plain list: what a client makes of it depends on how it skips what it does not know (2026-12-03).
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked garbage\r\n\r\n", .ambiguousFraming),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked;q=1\r\n\r\n", .ambiguousFraming),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip,,chunked\r\n\r\n", .ambiguousFraming),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding:\r\n\r\n", .ambiguousFraming),
            ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", .switchingProtocols),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", .malformedChunk),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n", .malformedChunk),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX", .malformedChunk),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc", .malformedChunk),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1ffffffffffffffff\r\n", .malformedChunk),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n:bad trailer\r\n\r\n", .malformedChunk),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\rX", .malformedChunk),
            ("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA", .unexpectedBytes),
        ]
        for (text, error) in bad {
            var driver = Driver()
            #expect(throws: error, "\(text.debugDescription)") { try driver.feed(text) }
            // Once broken, the connection stays broken.
            #expect(throws: HTTPResponseFramerError.unexpectedBytes) { try driver.feed("HTTP/1.1 200 OK\r\n\r\n") }
        }
        // A chunked response to an HTTP/1.0 request cannot reach an HTTP/1.0 client as it is.
        var http10 = Driver(isHTTP10: true)
        #expect(throws: HTTPResponseFramerError.ambiguousFraming) {
            try http10.feed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        }
    }

    @Test func headAndFieldCountLimits() throws {
        let limits = HTTPResponseFramer.Limits(maxHeadBytes: 64, maxHeaderCount: 2)
        var large = Driver(limits: limits)
        // Refused as soon as more than the limit has arrived without the head's end, even a byte at a time.
        for byte in "HTTP/1.1 200 OK\r\nX-Long: \(String(repeating: "v", count: 30))".utf8 {
            try large.feed(String(decoding: [byte], as: UTF8.self))
        }
        #expect(throws: HTTPResponseFramerError.headTooLarge(limit: 64)) { try large.feed(String(repeating: "v", count: 30)) }
        var many = Driver(limits: limits)
        #expect(throws: HTTPResponseFramerError.tooManyHeaders(limit: 2)) { try many.feed("HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n") }
        var fits = Driver(limits: limits)
        try fits.feed("HTTP/1.1 200 OK\r\nA: 1\r\nContent-Length: 0\r\n\r\n")
        #expect(fits.recorded.last == .end)
    }

    @Test func bytesWithoutARequestAreAnError() {
        var framer = HTTPResponseFramer(limits: .init(maxHeadBytes: 1024, maxHeaderCount: 10))
        var bytes = ByteBuffer(string: "HTTP/1.1 408 Request Timeout\r\n\r\n")
        #expect(throws: HTTPResponseFramerError.unexpectedBytes) { try framer.next(&bytes) }
    }

    /// Mutated and truncated responses, split at random places: the framer reports an error or parts, never
    /// traps, and what it forwards is always the bytes it was given, in order.
    @Test func garbageNeverTrapsAndForwardedBytesAreTheInput() throws {
        var random = SplitMix64(seed: 42)
        let samples = [Self.contentLength, Self.chunked, Self.interimThenFinal,
                       "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-A\r\nX-A: 1\r\n\r\nuntil close"]
        for round in 0..<3000 {
            var bytes = Array(samples[round % samples.count].utf8)
            for _ in 0..<Int(random.next() % 4) {
                bytes[Int(random.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: random.next())
            }
            if random.next() % 4 == 0 { bytes.removeLast(Int(random.next() % UInt64(bytes.count))) }
            var driver = Driver(isHEAD: random.next() % 8 == 0, isHTTP10: random.next() % 8 == 0)
            var offset = 0
            do {
                while offset < bytes.count {
                    let length = 1 + Int(random.next() % UInt64(bytes.count - offset))
                    try driver.feed(bytes: bytes[offset..<(offset + length)])
                    offset += length
                }
                driver.close()
            } catch {
                continue
            }
            for head in driver.heads {
                let rewritten = head.rewritten(version: .http1_1, adding: [(name: "x", value: "y")], allocator: ByteBufferAllocator())
                #expect(String(buffer: rewritten).hasSuffix("x: y\r\n\r\n"))
            }
            // Interim heads are left out, so the forwarded bytes are the input's from some point on, or a run of it.
            let run = driver.forwarded
            let found = run.isEmpty || (run.count <= bytes.count
                && (0...(bytes.count - run.count)).contains { bytes[$0..<($0 + run.count)].elementsEqual(run) })
            #expect(found, "round \(round)")
        }
    }

    @Test func a101ToAnUpgradeRequestEndsHTTPOnTheConnection() throws {
        let head = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
        var framer = HTTPResponseFramer(limits: .init(maxHeadBytes: 4096, maxHeaderCount: 20))
        framer.requestSent(isHEAD: false, isHTTP10: false, asksUpgrade: true)
        // An interim 100 first is still dropped; the 101 that follows switches.
        var bytes = ByteBuffer(string: "HTTP/1.1 100 Continue\r\n\r\n" + head + "frame-1")
        guard case .switched(let switched) = try framer.next(&bytes) else {
            Issue.record("expected .switched")
            return
        }
        #expect(String(buffer: switched.bytes) == head)
        #expect(switched.keepAlive == false)
        // What follows the head is left to the caller, now and later: the framer reads no more.
        #expect(String(buffer: bytes) == "frame-1")
        #expect(try framer.next(&bytes) == nil)
        var later = ByteBuffer(string: "HTTP/1.1 200 OK\r\n\r\n")
        #expect(try framer.next(&later) == nil)
        #expect(later.readableBytes == 19)
        #expect(framer.inputClosed() == nil)
        // Without the request asking, 101 is still a framing error.
        var unasked = HTTPResponseFramer(limits: .init(maxHeadBytes: 4096, maxHeaderCount: 20))
        unasked.requestSent(isHEAD: false, isHTTP10: false)
        var again = ByteBuffer(string: head)
        #expect(throws: HTTPResponseFramerError.switchingProtocols) { try unasked.next(&again) }
    }

    @Test func responsesFollowOneAnotherOnAKeptConnection() throws {
        var driver = Driver()
        try driver.feed(Self.contentLength)
        driver.framer.requestSent(isHEAD: false, isHTTP10: false)
        try driver.feed(Self.chunked)
        #expect(driver.recorded.filter { $0 == .end }.count == 2)
        #expect(driver.heads.map(\.framing) == [.contentLength(5), .chunked])
    }
}

