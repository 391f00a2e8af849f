import Logging
import NIOCore

/// One access log line in the making: an L7 exchange (from its request head to the end of its response) or an L4
/// connection. Made only when the access log is on, so requests pay nothing for it otherwise.
///
/// A line is `info` level, message `access`, with metadata `client`, `backend` (`-` when none answered), `status`
/// (L7; `101` for an upgrade, the proxy's own status for its answers, `-` when the client left first), `method` and
/// `target` (L7), `bytes_in` (request bytes sent to the backend, L4) and `bytes_out` (response bytes sent to the
/// client), `ms` (from the request head, or the connection's accept, to the end), and `outcome` (`done`,
/// `upgraded`, `proxy answer`, `client closed`, `closed`).
struct AccessLogEntry {
    let started: NIODeadline
    let client: String
    /// The request's method and target for an L7 exchange; `nil` for an L4 connection.
    private(set) var request: (method: String, target: String)?
    var status: Int?
    var backend: String?
    var bytesIn = 0
    var bytesOut = 0

    init(client: ClientAddress?, started: NIODeadline = .now()) {
        self.started = started
        self.client = client?.description ?? "-"
    }

    /// An L7 exchange that begins with `head`.
    init(client: ClientAddress?, head: ClientRequestHead) {
        self.init(client: client)
        request = (method: head.text(0..<(head.target.lowerBound - 1)), target: head.text(head.target))
    }

    /// Bytes from a client that never made a request head the proxy could read (it answers 400, 408 or 431).
    static func unreadRequest(client: ClientAddress?) -> AccessLogEntry {
        var entry = AccessLogEntry(client: client)
        entry.request = (method: "-", target: "-")
        return entry
    }

    func write(to logger: Logger, outcome: String) {
        let elapsed = Double((NIODeadline.now() - started).nanoseconds) / 1_000_000
        var metadata: Logger.Metadata = [
            "client": "\(client)",
            "backend": "\(backend ?? "-")",
            "status": "\(status.map(String.init) ?? "-")",
            "bytes_out": "\(bytesOut)",
            "ms": "\((elapsed * 1000).rounded() / 1000)",
            "outcome": "\(outcome)",
        ]
        if let request {
            metadata["method"] = "\(request.method)"
            metadata["target"] = "\(request.target)"
        } else {
            metadata["bytes_in"] = "\(bytesIn)"
        }
        logger.info("access", metadata: metadata)
    }
}
