import NIOCore
import NIOHTTP1

/// One HTTP response as a virtual user sees it.
public struct LabHTTPResponse: Sendable {
    public var status: Int
    public var headers: HTTPHeaders
    public var body: ByteBuffer
    /// The size of the status line and header block on the wire (what the response costs besides its body).
    public var headBytes: Int

    public var bodyText: String { String(buffer: body) }

    /// The `Location` header's path, for redirects.
    public var location: String? { headers.first(name: "location") }

    /// The node that answered (`X-Concord-Node`).
    public var node: String? { headers.first(name: "x-concord-node") }

    init(head: HTTPResponseHead, body: ByteBuffer) {
        self.status = Int(head.status.code)
        self.headers = head.headers
        self.body = body
        // "HTTP/1.1 200 OK\r\n" + "name: value\r\n"… + "\r\n"
        var bytes = 9 + 3 + 1 + head.status.reasonPhrase.utf8.count + 2 + 2
        for (name, value) in head.headers { bytes += name.utf8.count + 2 + value.utf8.count + 2 }
        self.headBytes = bytes
    }
}
