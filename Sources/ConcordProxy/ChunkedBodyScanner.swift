/// Follows a chunked body's framing (RFC 9112 §7.1) byte by byte to find where it ends, without changing or
/// keeping any of it: the proxy forwards the chunks, extensions and trailers as they came. Chunk data is skipped
/// in one step; only the framing bytes are looked at, so the body may be split anywhere between reads.
struct ChunkedBodyScanner {
    private enum State {
        /// The first hex digit of a chunk size.
        case sizeStart
        /// More hex digits, or the end of the size (CR, or `;` / whitespace before extensions).
        case size
        /// Whitespace after the size: more of it, the `;` of an extension (RFC 9112 §7.1.1's BWS) or the CR.
        /// `5 garbage` was taken as an extension — and `ACE /admin HTTP/1.1` as a chunk of 0xACE bytes.
        case sizeBWS
        /// Chunk extensions, up to the CR that ends the size line.
        case extensions
        /// The LF after a size line.
        case sizeLF
        /// `remaining` bytes of chunk data.
        case data
        /// The CRLF after chunk data.
        case dataCR
        case dataLF
        /// After the last chunk: a trailer field, or the CR of the final blank line.
        case trailerStart
        /// A trailer field's name, up to its colon.
        case trailerName
        /// A trailer field's value, up to its CR.
        case trailerField
        case trailerLF
        /// The LF that ends the body.
        case finalLF
        case complete
    }

    private var state = State.sizeStart
    /// The chunk size being read, then the chunk data still to come.
    private var remaining = 0
    /// Bytes of the current size line's extensions, or of the trailer section (each bounded by `maxLineBytes`).
    private var lineBytes = 0
    /// The longest extensions of one size line, and the longest trailer section, in bytes.
    let maxLineBytes: Int
    /// Hex digits of the current size (leading zeros included): at most 16, as Go's reader.
    private var sizeDigits = 0
    /// FNV-1a of the current trailer name in lower case, to refuse the fields a trailer must not carry.
    private var trailerNameHash: UInt64 = 0
    /// Chunk data bytes the size lines seen so far announce — what a body limit counts, so that `fffffff` is
    /// refused as soon as its line ends instead of after 16 MiB have come.
    private(set) var announcedBytes = 0

    /// Whether a trailer that frames or routes the message (`Content-Length`, `Host`, …) or carries what the
    /// proxy vouches for in the head (`X-Forwarded-For`, `Cookie`, …; ``forbiddenTrailerHashes``) is an error: for
    /// requests, whose trailers the proxy forwards to backends that may merge them into the head. A response's
    /// are the backend's own (the HTTP/2 bridge leaves such fields out).
    let refusesHeadOnlyTrailers: Bool

    init(maxLineBytes: Int, refusesHeadOnlyTrailers: Bool = false) {
        self.maxLineBytes = maxLineBytes
        self.refusesHeadOnlyTrailers = refusesHeadOnlyTrailers
    }

    var isComplete: Bool { state == .complete }

    /// Reads `bytes`, which follow the bytes of earlier calls, and returns how many of them belong to the body:
    /// all of them, or fewer when the body ends within them (then ``isComplete`` is true).
    /// `data` gets the range of each piece of chunk data within `bytes`, and `trailers` each piece of the trailer
    /// section's field lines (CRLFs included, not the blank line that ends the body): the HTTP/2 bridge passes the
    /// data on as DATA frames and the trailers as a HEADERS frame.
    mutating func scan(_ bytes: UnsafeRawBufferPointer, data: (Range<Int>) -> Void = { _ in },
                       trailers: (Range<Int>) -> Void = { _ in }) -> Result<Int, HTTPResponseFramerError> {
        var i = 0
        let n = bytes.count
        // Where the run of trailer bytes seen in this call began, while one is open.
        var trailerRun: Int?
        defer { if let start = trailerRun { trailers(start..<i) } }
        while i < n {
            let byte = bytes[i]
            let inTrailer = state == .trailerName || state == .trailerField || state == .trailerLF
                || (state == .trailerStart && byte != HTTPSyntax.cr)
            if inTrailer, trailerRun == nil {
                trailerRun = i
            } else if !inTrailer, let start = trailerRun {
                trailers(start..<i)
                trailerRun = nil
            }
            switch state {
            case .sizeStart:
                guard let digit = HTTPSyntax.hexValue(byte) else { return .failure(.malformedChunk) }
                remaining = digit
                sizeDigits = 1
                state = .size
            case .size:
                if let digit = HTTPSyntax.hexValue(byte) {
                    sizeDigits += 1
                    guard remaining <= Int.max >> 4, sizeDigits <= 16 else { return .failure(.malformedChunk) }
                    remaining = remaining << 4 | digit
                } else if byte == HTTPSyntax.cr {
                    state = .sizeLF
                } else if byte == HTTPSyntax.semicolon {
                    lineBytes = 0
                    state = .extensions
                } else if HTTPSyntax.isWhitespace(byte) {
                    lineBytes = 0
                    state = .sizeBWS
                } else {
                    return .failure(.malformedChunk)
                }
            case .sizeBWS:
                lineBytes += 1
                guard lineBytes <= maxLineBytes else { return .failure(.malformedChunk) }
                if byte == HTTPSyntax.semicolon {
                    state = .extensions
                } else if byte == HTTPSyntax.cr {
                    state = .sizeLF
                } else if !HTTPSyntax.isWhitespace(byte) {
                    return .failure(.malformedChunk)
                }
            case .extensions:
                guard lineByte(byte, endingIn: .sizeLF) else { return .failure(.malformedChunk) }
            case .sizeLF:
                guard byte == HTTPSyntax.lf else { return .failure(.malformedChunk) }
                if remaining == 0 {
                    lineBytes = 0
                    state = .trailerStart
                } else {
                    announcedBytes = announcedBytes > Int.max - remaining ? Int.max : announcedBytes + remaining
                    state = .data
                }
            case .data:
                let take = min(remaining, n - i)
                data(i..<(i + take))
                remaining -= take
                i += take
                if remaining == 0 { state = .dataCR }
                continue
            case .dataCR:
                guard byte == HTTPSyntax.cr else { return .failure(.malformedChunk) }
                state = .dataLF
            case .dataLF:
                guard byte == HTTPSyntax.lf else { return .failure(.malformedChunk) }
                state = .sizeStart
            case .trailerStart:
                if byte == HTTPSyntax.cr {
                    state = .finalLF
                } else {
                    lineBytes += 1
                    guard HTTPSyntax.isToken(byte), lineBytes <= maxLineBytes else { return .failure(.malformedChunk) }
                    trailerNameHash = Self.fnvAdd(Self.fnvBasis, HTTPSyntax.lowercased(byte))
                    state = .trailerName
                }
            case .trailerName:
                // `name:` and nothing else (a line without a colon went through before 2026-12-03), and in a
                // request none of ``forbiddenTrailerHashes`` (RFC 9110 §6.5.1): a backend that merged trailers into
                // the head would read `Content-Length`, `Host` or `X-Forwarded-For` from one.
                lineBytes += 1
                guard lineBytes <= maxLineBytes else { return .failure(.malformedChunk) }
                if byte == HTTPSyntax.colon {
                    guard !refusesHeadOnlyTrailers || !Self.forbiddenTrailerHashes.contains(trailerNameHash) else {
                        return .failure(.malformedChunk)
                    }
                    state = .trailerField
                } else {
                    guard HTTPSyntax.isToken(byte) else { return .failure(.malformedChunk) }
                    trailerNameHash = Self.fnvAdd(trailerNameHash, HTTPSyntax.lowercased(byte))
                }
            case .trailerField:
                guard lineByte(byte, endingIn: .trailerLF) else { return .failure(.malformedChunk) }
            case .trailerLF:
                guard byte == HTTPSyntax.lf else { return .failure(.malformedChunk) }
                state = .trailerStart
            case .finalLF:
                guard byte == HTTPSyntax.lf else { return .failure(.malformedChunk) }
                state = .complete
                return .success(i + 1)
            case .complete:
                return .success(i)
            }
            i += 1
        }
        return .success(n)
    }

    private static let fnvBasis: UInt64 = 0xcbf2_9ce4_8422_2325

    @inline(__always)
    private static func fnvAdd(_ hash: UInt64, _ byte: UInt8) -> UInt64 { (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }

    /// Fields a request's trailer section must not carry: framing, routing and connection control, and what the
    /// proxy vouches for in the head — the client's address and certificate, its cookies and credentials — which
    /// a backend that merges trailers into the head would otherwise take from the client (a probe sent
    /// `x-forwarded-for: 6.6.6.6` and `cookie` as trailers, 2026-12-03).
    private static let forbiddenTrailerHashes: Set<UInt64> = Set(
        ["content-length", "transfer-encoding", "host", "connection", "keep-alive", "upgrade", "te", "trailer",
         "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-port", "forwarded", "x-real-ip",
         "x-forwarded-client-cert", "cookie", "authorization", "proxy-authorization"].map { name in
            name.utf8.reduce(fnvBasis, fnvAdd)
        })

    /// A byte of a size line's extensions or of a trailer field: CR ends the line (the state becomes `next`);
    /// anything else must be field content, within `maxLineBytes`.
    private mutating func lineByte(_ byte: UInt8, endingIn next: State) -> Bool {
        if byte == HTTPSyntax.cr {
            state = next
            return true
        }
        lineBytes += 1
        return HTTPSyntax.isFieldContent(byte) && lineBytes <= maxLineBytes
    }
}
