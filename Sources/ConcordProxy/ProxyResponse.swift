import NIOCore
import NIOHTTP1

/// A response the proxy makes itself (limits, no backend, backend failure), as the bytes the client gets: with the
/// configured response fields (``ProxyConfiguration/responseHeaders``) as a backend's responses get them — an
/// `Strict-Transport-Security` belongs on a 502 too (nginx's `add_header … always`).
struct ProxyResponse {
    static func bytes(_ status: HTTPResponseStatus, version: HTTPVersion, adding fields: [(name: String, value: String)] = [],
                      allocator: ByteBufferAllocator) -> ByteBuffer {
        let text = body(status)
        var head = "\(version == .http1_0 ? "HTTP/1.0" : "HTTP/1.1") \(status.code) \(status.reasonPhrase)\r\n"
            + "content-type: text/plain; charset=utf-8\r\ncontent-length: \(text.utf8.count)\r\n"
        for field in fields { head += "\(field.name): \(field.value)\r\n" }
        head += "connection: close\r\n\r\n"
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
