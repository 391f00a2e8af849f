import NIOHTTP1

/// Why a client's request could not be framed. The proxy answers ``responseStatus`` (431 for a head over the
/// limits, 505 for an HTTP version other than 1.0 and 1.1, otherwise 400) and closes the connection: after a
/// framing error nothing more on it can be understood.
struct HTTPRequestFramerError: Error, Sendable, Hashable, CustomStringConvertible {
    private enum Base: Sendable, Hashable {
        case headTooLarge(limit: Int)
        case tooManyHeaders(limit: Int)
        case malformedRequestLine
        case fragmentInTarget
        case unsupportedVersion
        case malformedHeader
        case invalidContentLength
        case ambiguousFraming
        case invalidHost
        case malformedChunk
    }

    private let base: Base
    private init(_ base: Base) { self.base = base }

    /// The request line and headers did not end within `limit` bytes.
    static func headTooLarge(limit: Int) -> Self { Self(.headTooLarge(limit: limit)) }
    /// More than `limit` header fields.
    static func tooManyHeaders(limit: Int) -> Self { Self(.tooManyHeaders(limit: limit)) }
    /// Not `METHOD SP target SP HTTP/x.y CRLF` with a token method and a target of visible characters.
    static let malformedRequestLine = Self(.malformedRequestLine)
    /// A `#` in the target: a fragment is the client's own (RFC 9112 §3.2 targets carry none), and backends differ
    /// on it — one cuts it off, another routes `/a#/../admin` as a path — so it is refused, as over HTTP/2.
    static let fragmentInTarget = Self(.fragmentInTarget)
    /// `HTTP/x.y` other than 1.0 and 1.1.
    static let unsupportedVersion = Self(.unsupportedVersion)
    /// A field line without a colon, with a bad name or value, obsolete line folding, or a bare CR or LF.
    static let malformedHeader = Self(.malformedHeader)
    /// Content-Length is not a plain decimal number, or appears more than once.
    static let invalidContentLength = Self(.invalidContentLength)
    /// Framing that two parties could read differently (how requests get smuggled past proxies):
    /// Content-Length with Transfer-Encoding, `chunked` twice or not last, or Transfer-Encoding in HTTP/1.0.
    static let ambiguousFraming = Self(.ambiguousFraming)
    /// No Host in an HTTP/1.1 request, or more than one (RFC 9112 §3.2).
    static let invalidHost = Self(.invalidHost)
    /// A chunk size line, a chunk's trailing CRLF or the trailer section is malformed.
    static let malformedChunk = Self(.malformedChunk)

    /// The status the proxy answers with before closing the connection.
    var responseStatus: HTTPResponseStatus {
        switch base {
        case .headTooLarge, .tooManyHeaders: .requestHeaderFieldsTooLarge
        case .unsupportedVersion: .httpVersionNotSupported
        default: .badRequest
        }
    }

    var description: String {
        switch base {
        case .headTooLarge(let limit): "request head larger than \(limit) bytes"
        case .tooManyHeaders(let limit): "more than \(limit) request header fields"
        case .malformedRequestLine: "malformed request line"
        case .fragmentInTarget: "request target with a fragment (#), which HTTP requests never carry"
        case .unsupportedVersion: "HTTP version other than 1.0 and 1.1"
        case .malformedHeader: "malformed request header field"
        case .invalidContentLength: "invalid or repeated Content-Length"
        case .ambiguousFraming: "ambiguous request framing (Transfer-Encoding)"
        case .invalidHost: "missing or repeated Host"
        case .malformedChunk: "malformed chunked body"
        }
    }
}
