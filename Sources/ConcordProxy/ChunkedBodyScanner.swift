/// Follows a chunked body's framing (RFC 9112 §7.1) byte by byte to find where it ends, without changing or
/// keeping any of it: the proxy forwards the chunks, extensions and trailers as they came. Chunk data is skipped
/// in one step; only the framing bytes are looked at, so the body may be split anywhere between reads.
struct ChunkedBodyScanner {
    private enum State {
        /// The first hex digit of a chunk size.
        case sizeStart
        /// More hex digits, or the end of the size (CR, or `;` / whitespace before extensions).
        case size
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
        /// A trailer field line, up to its CR.
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
    /// Chunk data bytes the size lines seen so far announce — what a body limit counts, so that `fffffff` is
    /// refused as soon as its line ends instead of after 16 MiB have come.
    private(set) var announcedBytes = 0

    init(maxLineBytes: Int) { self.maxLineBytes = maxLineBytes }

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
            let inTrailer = state == .trailerField || state == .trailerLF || (state == .trailerStart && byte != HTTPSyntax.cr)
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
                state = .size
            case .size:
                if let digit = HTTPSyntax.hexValue(byte) {
                    guard remaining <= Int.max >> 4 else { return .failure(.malformedChunk) }
                    remaining = remaining << 4 | digit
                } else if byte == HTTPSyntax.cr {
                    state = .sizeLF
                } else if byte == HTTPSyntax.semicolon || HTTPSyntax.isWhitespace(byte) {
                    lineBytes = 0
                    state = .extensions
                } else {
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
                    state = .trailerField
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
