import NIOHTTP1

extension HTTPHeaders {
    /// Removes hop-by-hop headers (RFC 9110 §7.6.1): the fixed list and any named in `Connection`. Framing
    /// (`Content-Length`, `Transfer-Encoding`) stays, so NIO's encoder frames the body as the sender did.
    mutating func removeHopByHop() {
        let named = self[canonicalForm: "connection"]
        for name in named where !name.isEmpty {
            let lowered = name.lowercased()
            if lowered != "transfer-encoding" && lowered != "content-length" { remove(name: String(name)) }
        }
        for name in ["connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade"] { remove(name: name) }
    }
}

/// A response the proxy makes itself (limits, no backend, backend failure).
struct ProxyResponse {
    static func head(_ status: HTTPResponseStatus, version: HTTPVersion, bodyLength: Int) -> HTTPResponseHead {
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "text/plain; charset=utf-8")
        headers.add(name: "content-length", value: String(bodyLength))
        headers.add(name: "connection", value: "close")
        return HTTPResponseHead(version: version.major == 1 ? version : .http1_1, status: status, headers: headers)
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
