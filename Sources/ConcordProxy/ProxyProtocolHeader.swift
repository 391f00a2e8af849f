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
        switch version {
        case .v1:
            if let src, let dst, src.isIPv4 == dst.isIPv4 {
                buffer.writeString("PROXY \(src.isIPv4 ? "TCP4" : "TCP6") \(src) \(dst) \(srcPort) \(dstPort)\r\n")
            } else {
                buffer.writeString("PROXY UNKNOWN\r\n")
            }
        case .v2:
            buffer.writeBytes(v2Signature)
            guard let src, let dst, src.isIPv4 == dst.isIPv4 else {
                buffer.writeInteger(UInt8(0x20))  // version 2, LOCAL
                buffer.writeInteger(UInt8(0x00))  // UNSPEC
                buffer.writeInteger(UInt16(0))
                return
            }
            buffer.writeInteger(UInt8(0x21))  // version 2, PROXY
            buffer.writeInteger(UInt8(src.isIPv4 ? 0x11 : 0x21))  // INET/INET6 over STREAM
            buffer.writeInteger(UInt16(src.isIPv4 ? 12 : 36))
            buffer.writeBytes(src.bytes)
            buffer.writeBytes(dst.bytes)
            buffer.writeInteger(UInt16(truncatingIfNeeded: srcPort))
            buffer.writeInteger(UInt16(truncatingIfNeeded: dstPort))
        }
    }
}
