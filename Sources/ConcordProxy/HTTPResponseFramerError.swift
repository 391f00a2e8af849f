/// Why a backend's response could not be framed. The proxy answers 502 if nothing of the response reached the
/// client yet (otherwise it closes the client connection) and always closes the backend connection.
struct HTTPResponseFramerError: Error, Sendable, Hashable, CustomStringConvertible {
    private enum Base: Sendable, Hashable {
        case headTooLarge(limit: Int)
        case tooManyHeaders(limit: Int)
        case malformedStatusLine
        case malformedHeader
        case invalidContentLength
        case ambiguousFraming
        case malformedChunk
        case switchingProtocols
        case unexpectedBytes
        case truncatedHead
    }

    private let base: Base
    private init(_ base: Base) { self.base = base }

    /// The status line and headers did not end within `limit` bytes.
    static func headTooLarge(limit: Int) -> Self { Self(.headTooLarge(limit: limit)) }
    /// More than `limit` header fields.
    static func tooManyHeaders(limit: Int) -> Self { Self(.tooManyHeaders(limit: limit)) }
    /// Not `HTTP/1.0` or `HTTP/1.1`, a status outside 100–599, or a bad character in the reason.
    static let malformedStatusLine = Self(.malformedStatusLine)
    /// A field line without a colon or with a bad name or value, obsolete line folding, or a bare CR or LF.
    static let malformedHeader = Self(.malformedHeader)
    /// Content-Length is not a plain decimal number, or appears more than once.
    static let invalidContentLength = Self(.invalidContentLength)
    /// Framing that two parties could read differently (how responses get split): Content-Length with
    /// Transfer-Encoding, `chunked` twice or not last, or Transfer-Encoding in an HTTP/1.0 exchange.
    static let ambiguousFraming = Self(.ambiguousFraming)
    /// A chunk size line, a chunk's trailing CRLF or the trailer section is malformed.
    static let malformedChunk = Self(.malformedChunk)
    /// 101 to a request that did not ask to switch protocols (the proxy removed its `Upgrade`, if any).
    static let switchingProtocols = Self(.switchingProtocols)
    /// Bytes arrived while no request was outstanding.
    static let unexpectedBytes = Self(.unexpectedBytes)
    /// The connection closed after part of a response head (or bytes that are not one, such as another
    /// protocol's banner): the backend answered, badly — not a connection that failed before any response.
    static let truncatedHead = Self(.truncatedHead)

    var description: String {
        switch base {
        case .headTooLarge(let limit): "response head larger than \(limit) bytes"
        case .tooManyHeaders(let limit): "more than \(limit) response header fields"
        case .malformedStatusLine: "malformed status line"
        case .malformedHeader: "malformed response header field"
        case .invalidContentLength: "invalid or repeated Content-Length"
        case .ambiguousFraming: "ambiguous response framing (Transfer-Encoding)"
        case .malformedChunk: "malformed chunked body"
        case .switchingProtocols: "101 Switching Protocols without an upgrade request"
        case .unexpectedBytes: "bytes received while no request was outstanding"
        case .truncatedHead: "closed after part of a response head, or bytes that are not HTTP"
        }
    }
}
