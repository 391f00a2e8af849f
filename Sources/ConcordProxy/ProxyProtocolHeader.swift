import NIOCore

/// The PROXY protocol header (HAProxy's spec, v1 text and v2 binary) that tells a backend the real client and
/// destination addresses of an L4-proxied connection.
enum ProxyProtocolHeader {
    static let v2Signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]

    static func encode(_ version: ProxyProtocolVersion, source: SocketAddress?, destination: SocketAddress?,
                       into buffer: inout ByteBuffer) {
        let src = source.flatMap { ClientAddress($0) }
        let dst = destination.flatMap { ClientAddress($0) }
        let srcPort = source?.port ?? 0
        let dstPort = destination?.port ?? 0
        // One family for both: an IPv4 address beside an IPv6 one goes as IPv4-mapped IPv6 (a received TCP6 header
        // may name `::ffff:1.2.3.4`, which ClientAddress folds to IPv4; it went out as UNKNOWN, losing the client).
        let v4 = src?.isIPv4 == true && dst?.isIPv4 == true
        switch version {
        case .v1:
            if let src, let dst {
                buffer.writeString("PROXY \(v4 ? "TCP4" : "TCP6") \(text(src, v4: v4)) \(text(dst, v4: v4)) \(srcPort) \(dstPort)\r\n")
            } else {
                buffer.writeString("PROXY UNKNOWN\r\n")
            }
        case .v2:
            buffer.writeBytes(v2Signature)
            guard let src, let dst else {
                buffer.writeInteger(UInt8(0x20))  // version 2, LOCAL
                buffer.writeInteger(UInt8(0x00))  // UNSPEC
                buffer.writeInteger(UInt16(0))
                return
            }
            buffer.writeInteger(UInt8(0x21))  // version 2, PROXY
            buffer.writeInteger(UInt8(v4 ? 0x11 : 0x21))  // INET/INET6 over STREAM
            buffer.writeInteger(UInt16(v4 ? 12 : 36))
            buffer.writeBytes(bytes(src, v4: v4))
            buffer.writeBytes(bytes(dst, v4: v4))
            buffer.writeInteger(UInt16(truncatingIfNeeded: srcPort))
            buffer.writeInteger(UInt16(truncatingIfNeeded: dstPort))
        }
    }

    private static func text(_ address: ClientAddress, v4: Bool) -> String {
        v4 || !address.isIPv4 ? "\(address)" : "::ffff:\(address)"
    }

    private static func bytes(_ address: ClientAddress, v4: Bool) -> [UInt8] {
        v4 || !address.isIPv4 ? address.bytes : [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF] + address.bytes
    }
}

extension ProxyProtocolHeader {
    /// The most a received header may take: a v1 line is at most 107 bytes; a v2 header is 16 bytes and its
    /// addresses (36 for IPv6) plus TLVs, which the proxy does not use — more than this is refused.
    static let maximumReceivedLength = 1024

    /// What the front of a connection's first bytes says, when the listener expects a PROXY protocol header.
    enum Received: Equatable {
        /// Not enough bytes yet to tell — always fewer than ``maximumReceivedLength``: a v1 line without its end is
        /// invalid past 107 bytes, and a v2 header announcing more than the maximum is invalid once its 16-byte fixed
        /// part is in.
        case incomplete
        /// Not a PROXY protocol header, or a malformed one (the reason, for the log).
        case invalid(String)
        /// A header of `length` bytes. `source` and `destination` are `nil` for `PROXY UNKNOWN` and v2 `LOCAL`
        /// (a health check of the proxy in front, whose own connection addresses apply).
        case header(length: Int, source: SocketAddress?, destination: SocketAddress?)
    }

    /// Parses a v1 (text) or v2 (binary) header at the front of `bytes`.
    static func parse(_ bytes: ByteBuffer) -> Received {
        let view = bytes.readableBytesView
        let v1Prefix = Array("PROXY ".utf8)
        if view.starts(with: v1Prefix.prefix(view.count)), view.count < v1Prefix.count { return .incomplete }
        if view.starts(with: v1Prefix) { return parseV1(view) }
        if view.starts(with: v2Signature.prefix(view.count)) {
            return view.count < v2Signature.count ? .incomplete : parseV2(view)
        }
        return .invalid("no PROXY protocol header")
    }

    private static func parseV1(_ view: ByteBufferView) -> Received {
        let lineEnd = view.indices.first { index in index + 1 < view.endIndex && view[index] == 13 && view[index + 1] == 10 }
        guard let lineEnd else {
            return view.count >= 107 ? .invalid("a v1 header longer than 107 bytes") : .incomplete
        }
        let length = lineEnd + 2 - view.startIndex
        guard length <= 107 else { return .invalid("a v1 header longer than 107 bytes") }
        let fields = String(decoding: view[view.startIndex..<lineEnd], as: UTF8.self).split(separator: " ", omittingEmptySubsequences: false)
        if fields.count >= 2, fields[1] == "UNKNOWN" { return .header(length: length, source: nil, destination: nil) }
        guard fields.count == 6, fields[1] == "TCP4" || fields[1] == "TCP6",
            // No zone (`fe80::1%lo`): it names an interface of the sender's host, meaningless here.
            !fields[2].contains("%"), !fields[3].contains("%"),
            let sourcePort = port(fields[4]), let destinationPort = port(fields[5]),
            let source = try? SocketAddress(ipAddress: String(fields[2]), port: sourcePort),
            let destination = try? SocketAddress(ipAddress: String(fields[3]), port: destinationPort),
            isV4(source) == (fields[1] == "TCP4"), isV4(destination) == (fields[1] == "TCP4")
        else {
            return .invalid("a malformed v1 header")
        }
        return .header(length: length, source: source, destination: destination)
    }

    private static func parseV2(_ view: ByteBufferView) -> Received {
        guard view.count >= 16 else { return .incomplete }
        let start = view.startIndex
        let versionCommand = view[start + 12]
        let family = view[start + 13]
        let addressLength = Int(view[start + 14]) << 8 | Int(view[start + 15])
        guard versionCommand >> 4 == 2 else { return .invalid("a v2 header of version \(versionCommand >> 4)") }
        let length = 16 + addressLength
        guard length <= maximumReceivedLength else { return .invalid("a v2 header of \(length) bytes") }
        guard view.count >= length else { return .incomplete }
        switch versionCommand & 0x0F {
        case 0:  // LOCAL: the proxy in front speaking for itself
            return .header(length: length, source: nil, destination: nil)
        case 1:  // PROXY
            break
        default:
            return .invalid("a v2 header with command \(versionCommand & 0x0F)")
        }
        let addresses = Array(view[(start + 16)..<(start + length)])
        func address(_ bytes: ArraySlice<UInt8>, port: ArraySlice<UInt8>) -> SocketAddress? {
            try? SocketAddress(
                packedIPAddress: ByteBuffer(bytes: bytes), port: Int(port[port.startIndex]) << 8 | Int(port[port.startIndex + 1]))
        }
        switch family >> 4 {
        case 1 where addresses.count >= 12:  // AF_INET
            return .header(
                length: length, source: address(addresses[0..<4], port: addresses[8..<10]),
                destination: address(addresses[4..<8], port: addresses[10..<12]))
        case 2 where addresses.count >= 36:  // AF_INET6
            return .header(
                length: length, source: address(addresses[0..<16], port: addresses[32..<34]),
                destination: address(addresses[16..<32], port: addresses[34..<36]))
        case 1, 2:
            return .invalid("a v2 header too short for its addresses")
        default:  // AF_UNSPEC or AF_UNIX: no IP to use; the connection's own addresses apply
            return .header(length: length, source: nil, destination: nil)
        }
    }

    private static func port(_ text: Substring) -> Int? {
        // Digits only, as nginx reads it (`Int` alone took `+80` and `-0`).
        guard !text.isEmpty, text.count <= 5, text.utf8.allSatisfy({ (48...57).contains($0) }), let value = Int(text),
              (0...65535).contains(value) else { return nil }
        return value
    }

    private static func isV4(_ address: SocketAddress) -> Bool {
        if case .v4 = address { true } else { false }
    }
}
