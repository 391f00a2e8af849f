import NIOCore
import Testing

@testable import ConcordProxy

/// Parsing received PROXY protocol headers (v1 text, v2 binary), checked against the proxy's own encoder and the
/// spec's examples.
@Suite struct ProxyProtocolHeaderTests {
    @Test(arguments: [ProxyProtocolVersion.v1, .v2], [("203.0.113.7", "10.0.0.1"), ("2001:db8::7", "2001:db8::1")])
    func whatTheEncoderWritesParsesBack(version: ProxyProtocolVersion, addresses: (String, String)) throws {
        let source = try SocketAddress(ipAddress: addresses.0, port: 51234)
        let destination = try SocketAddress(ipAddress: addresses.1, port: 443)
        var buffer = ByteBuffer()
        ProxyProtocolHeader.encode(version, source: source, destination: destination, into: &buffer)
        let length = buffer.readableBytes
        buffer.writeString("GET / HTTP/1.1\r\n")
        #expect(ProxyProtocolHeader.parse(buffer) == .header(length: length, source: source, destination: destination))
        // Every shorter prefix is incomplete, never invalid: a header may arrive in pieces.
        for cut in 1..<length {
            #expect(ProxyProtocolHeader.parse(buffer.getSlice(at: 0, length: cut)!) == .incomplete, "cut at \(cut)")
        }
    }

    /// A TCP6 header may name an IPv4-mapped source beside a native IPv6 destination; the header passed on keeps the
    /// client (it was `PROXY UNKNOWN` / v2 `LOCAL`: the pair of families did not match once the source was folded to
    /// IPv4). From a probe.
    @Test(arguments: [ProxyProtocolVersion.v1, .v2])
    func anIPv4MappedSourceBesideAnIPv6DestinationIsPassedOn(version: ProxyProtocolVersion) throws {
        let received = ProxyProtocolHeader.parse(ByteBuffer(string: "PROXY TCP6 ::ffff:1.2.3.4 ::1 80 2\r\n"))
        guard case .header(_, let source?, let destination?) = received else {
            Issue.record("not parsed: \(received)")
            return
        }
        var buffer = ByteBuffer()
        ProxyProtocolHeader.encode(version, source: source, destination: destination, into: &buffer)
        if version == .v1 { #expect(String(buffer: buffer) == "PROXY TCP6 ::ffff:1.2.3.4 ::1 80 2\r\n") }
        guard case .header(_, let passedSource?, _) = ProxyProtocolHeader.parse(buffer) else {
            Issue.record("\(version): the header passed on names no client: \(String(buffer: buffer).debugDescription)")
            return
        }
        #expect(ClientAddress(passedSource)?.description == "1.2.3.4" && passedSource.port == 80)
    }

    @Test func unknownAndLocalHeadersCarryNoAddress() {
        #expect(ProxyProtocolHeader.parse(ByteBuffer(string: "PROXY UNKNOWN\r\nGET")) == .header(length: 15, source: nil, destination: nil))
        var local = ByteBuffer()
        ProxyProtocolHeader.encode(.v2, source: nil, destination: nil, into: &local)  // LOCAL, UNSPEC
        #expect(ProxyProtocolHeader.parse(local) == .header(length: 16, source: nil, destination: nil))
    }

    @Test(arguments: [
        "GET / HTTP/1.1\r\n\r\n",  // no header at all
        "PROXY TCP4 1.2.3.4 5.6.7.8 80\r\n",  // a port missing
        "PROXY TCP4 1.2.3.4 ::1 80 443\r\n",  // families mixed
        "PROXY TCP6 1.2.3.4 5.6.7.8 80 443\r\n",  // TCP6 with IPv4 addresses
        "PROXY TCP4 1.2.3.4 5.6.7.8 80 65536\r\n",  // port out of range
        "PROXY TCP4 1.2.3.400 5.6.7.8 80 443\r\n",  // not an address
        "PROXY TCP4  1.2.3.4 5.6.7.8 80 443\r\n",  // two spaces
        "PROXY TCP4 1.2.3.4 5.6.7.8 +80 443\r\n",  // a sign (accepted before 2026-12-03, from a probe)
        "PROXY TCP4 1.2.3.4 5.6.7.8 -0 443\r\n",
        "PROXY TCP6 fe80::1%lo ::1 1 2\r\n",  // a zone
        "PROXY " + String(repeating: "x", count: 120),  // no line end within 107 bytes
    ])
    func malformedHeadersAreInvalid(text: String) {
        guard case .invalid = ProxyProtocolHeader.parse(ByteBuffer(string: text)) else {
            Issue.record("\(text.debugDescription) was accepted")
            return
        }
    }

    @Test func malformedV2HeadersAreInvalid() {
        func v2(_ versionCommand: UInt8, _ family: UInt8, _ length: UInt16, padding: Int) -> ByteBuffer {
            var buffer = ByteBuffer(bytes: ProxyProtocolHeader.v2Signature)
            buffer.writeInteger(versionCommand)
            buffer.writeInteger(family)
            buffer.writeInteger(length)
            buffer.writeRepeatingByte(0, count: padding)
            return buffer
        }
        for (buffer, what) in [
            (v2(0x11, 0x11, 12, padding: 12), "version 1"),
            (v2(0x22, 0x11, 12, padding: 12), "command 2"),
            (v2(0x21, 0x11, 8, padding: 8), "IPv4 addresses in 8 bytes"),
            (v2(0x21, 0x11, 2000, padding: 0), "2,016 bytes"),
        ] {
            guard case .invalid = ProxyProtocolHeader.parse(buffer) else {
                Issue.record("\(what) was accepted")
                continue
            }
        }
        // The addresses not arrived yet: incomplete.
        #expect(ProxyProtocolHeader.parse(v2(0x21, 0x11, 12, padding: 4)) == .incomplete)
        // The receivers rely on this: `incomplete` never holds maximumReceivedLength bytes or more.
        let longest = v2(0x21, 0x11, UInt16(ProxyProtocolHeader.maximumReceivedLength - 16), padding: ProxyProtocolHeader.maximumReceivedLength - 17)
        #expect(longest.readableBytes == ProxyProtocolHeader.maximumReceivedLength - 1)
        #expect(ProxyProtocolHeader.parse(longest) == .incomplete)
        guard case .invalid = ProxyProtocolHeader.parse(v2(0x21, 0x11, UInt16(ProxyProtocolHeader.maximumReceivedLength - 15), padding: 0)) else {
            Issue.record("a v2 header of maximumReceivedLength + 1 bytes was not refused at its fixed part")
            return
        }
        guard case .invalid = ProxyProtocolHeader.parse(ByteBuffer(string: "PROXY " + String(repeating: "1", count: 101))) else {
            Issue.record("a 107-byte v1 line without its end was not refused")
            return
        }
    }
}
