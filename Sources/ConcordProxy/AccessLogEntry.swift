import NIOCore

/// One access log line in the making: an L7 exchange (from its request head to the end of its response) or an L4
/// connection. Made only when the access log is on, so requests pay nothing for it otherwise.
///
/// The line (logfmt, after the UTC timestamp): `access client=… backend=… status=… method=… target=… bytes_out=…
/// us=… outcome=…` for L7, `access client=… backend=… bytes_in=… bytes_out=… us=… outcome=…` for L4 (see
/// docs/proxy.md, "Access log").
struct AccessLogEntry {
    let started: NIODeadline
    let client: String
    /// The request head's bytes, with where its method and target are, for an L7 exchange (copied into the line
    /// as bytes, no `String` made); `nil` for an L4 connection.
    private var request: (head: ByteBuffer, method: Range<Int>, target: Range<Int>)?
    var status: Int?
    var backend: String?
    var bytesIn = 0
    var bytesOut = 0

    /// `client` is the client's address as text (made once per connection).
    init(client: String, started: NIODeadline = .now()) {
        self.started = started
        self.client = client
    }

    /// An L7 exchange that begins with `head`.
    init(client: String, head: ClientRequestHead) {
        self.init(client: client)
        request = (head: head.bytes, method: 0..<(head.target.lowerBound - 1), target: head.target)
    }

    /// Bytes from a client that never made a request head the proxy could read (it answers 400, 408 or 431).
    static func unreadRequest(client: String) -> AccessLogEntry {
        var entry = AccessLogEntry(client: client)
        entry.request = (head: Self.dash, method: 0..<1, target: 0..<1)
        return entry
    }

    private static let dash = ByteBuffer(string: "-")

    /// Appends the line to `sink`; `outcome` is one word (`done`, `upgraded`, `proxy-answer`, …).
    func write(to sink: AccessLogSink, outcome: StaticString) {
        let micros = (NIODeadline.now() - started).nanoseconds / 1_000
        sink.line { out in
            out.writeString(" access client=")
            out.writeString(client)
            out.writeString(" backend=")
            out.writeString(backend ?? "-")
            if let request {
                out.writeString(" status=")
                if let status { Self.writeDecimal(status, to: &out) } else { out.writeString("-") }
                out.writeString(" method=")
                out.writeImmutableBuffer(request.head.getSlice(at: request.head.readerIndex + request.method.lowerBound, length: request.method.count)!)
                out.writeString(" target=")
                out.writeImmutableBuffer(request.head.getSlice(at: request.head.readerIndex + request.target.lowerBound, length: request.target.count)!)
            } else {
                out.writeString(" bytes_in=")
                Self.writeDecimal(bytesIn, to: &out)
            }
            out.writeString(" bytes_out=")
            Self.writeDecimal(bytesOut, to: &out)
            out.writeString(" us=")
            Self.writeDecimal(Int(micros), to: &out)
            out.writeString(" outcome=")
            out.writeStaticString(outcome)
        }
    }

    /// `value` (≥ 0) in decimal digits, without making a `String`.
    static func writeDecimal(_ value: Int, to out: inout ByteBuffer) {
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var remaining = UInt(max(0, value))
        var count = 0
        withUnsafeMutableBytes(of: &digits) { buffer in
            repeat {
                buffer[19 - count] = UInt8(ascii: "0") + UInt8(remaining % 10)
                remaining /= 10
                count += 1
            } while remaining > 0
            out.writeBytes(UnsafeRawBufferPointer(rebasing: buffer[(20 - count)...]))
        }
    }
}

extension Optional where Wrapped == AccessLogEntry {
    /// Writes the line in progress, if there is one and the log is on (`sink` not `nil`), and ends it: whichever
    /// way an exchange or connection ends, it is logged once. `status` and `backend`, when given, are filled in first.
    mutating func finish(to sink: AccessLogSink?, outcome: StaticString, status: Int? = nil, backend: Backend? = nil) {
        guard let sink, var entry = self else { return }
        self = nil
        if let status { entry.status = status }
        if let backend { entry.backend = backend.id }
        entry.write(to: sink, outcome: outcome)
    }
}
