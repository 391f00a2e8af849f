import NIOCore
import NIOHTTP1

extension HTTPHeaders {
    /// Removes hop-by-hop headers (RFC 9110 §7.6.1): the fixed list and any named in `Connection`. Framing
    /// (`Content-Length`, `Transfer-Encoding`) stays, so NIO's encoder frames the body as the sender did.
    mutating func removeHopByHop() {
        // Most messages carry none of them: one pass to find out, instead of a removal scan per name.
        guard contains(where: { Self.isHopByHop($0.name) }) else { return }
        let named = self[canonicalForm: "connection"]
        for name in named where !name.isEmpty {
            let lowered = name.lowercased()
            if lowered != "transfer-encoding" && lowered != "content-length" { remove(name: String(name)) }
        }
        for name in Self.hopByHop { remove(name: name) }
    }

    private static let hopByHop = ["connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade"]

    /// Whether `name` is one of the fixed hop-by-hop headers.
    private static func isHopByHop(_ name: String) -> Bool {
        hopByHop.contains { equalsASCIICaseInsensitive(name, lowercased: $0) }
    }

    /// `name == lowercased`, ignoring ASCII case in `name`, without allocating (`lowercased` must be lowercase).
    static func equalsASCIICaseInsensitive(_ name: String, lowercased: String) -> Bool {
        name.utf8.count == lowercased.utf8.count
            && zip(lowercased.utf8, name.utf8).allSatisfy { $0 == $1 || ($1 >= 0x41 && $1 <= 0x5A && $0 == $1 | 0x20) }
    }
}

/// A response the proxy makes itself (limits, no backend, backend failure), as the bytes the client gets.
struct ProxyResponse {
    static func bytes(_ status: HTTPResponseStatus, version: HTTPVersion, allocator: ByteBufferAllocator) -> ByteBuffer {
        let text = body(status)
        let head = "\(version == .http1_0 ? "HTTP/1.0" : "HTTP/1.1") \(status.code) \(status.reasonPhrase)\r\n"
            + "content-type: text/plain; charset=utf-8\r\ncontent-length: \(text.utf8.count)\r\nconnection: close\r\n\r\n"
        var buffer = allocator.buffer(capacity: head.utf8.count + text.utf8.count)
        buffer.writeString(head)
        buffer.writeString(text)
        return buffer
    }
    static func body(_ status: HTTPResponseStatus) -> String {
        let reason: String = switch status {
        case .badRequest: "malformed request"
        case .requestTimeout: "request headers not received in time"
        case .payloadTooLarge: "request body over the proxy's limit"
        case .requestHeaderFieldsTooLarge: "request headers over the proxy's limit"
        case .badGateway: "the backend could not be reached or failed"
        case .serviceUnavailable: "no backend is available"
        case .gatewayTimeout: "the backend did not answer in time"
        default: status.reasonPhrase
        }
        return "\(status.code) \(status.reasonPhrase): \(reason)\n"
    }
}
