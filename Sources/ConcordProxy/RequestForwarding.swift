import NIOCore

/// How one client connection's request heads go to the backend: hop-by-hop fields removed, `X-Forwarded-For`,
/// `X-Forwarded-Proto` and `Forwarded` added (a trusted peer's values are extended, an untrusted peer's are
/// replaced so clients cannot spoof them; `X-Real-IP`, `X-Forwarded-Host` and `X-Forwarded-Port` pass only from a
/// trusted peer), `X-Forwarded-Client-Cert` added for a client that showed a certificate
/// (``ClientCertificateIdentity``; one an untrusted peer sends is always removed), an HTTP/1.0 request marked `Connection: keep-alive` so the backend
/// connection can be pooled, and a protocol switch (``ClientRequestHead/upgrade``) asked for again. Built once per
/// connection: the added fields are the same bytes for every request.
/// A class so that a request borrows it instead of copying its strings and buffers (retains) out of the handler.
final class RequestForwarding: Sendable {
    /// The head as it goes out: `prefix` then `suffix` (`prefix` is a slice of what the client sent in the usual
    /// case; the backend connection joins the two in a reused buffer and writes them once).
    struct Head {
        var prefix: ByteBuffer
        var suffix: ByteBuffer

        var readableBytes: Int { prefix.readableBytes + suffix.readableBytes }
    }

    /// This client's address as X-Forwarded-For writes it.
    let client: String
    /// This client's `Forwarded` element (`for=…;proto=http`).
    let forwardedElement: String
    /// `http`, or `https` when the client came over TLS: `X-Forwarded-Proto` and `Forwarded`'s `proto`.
    let scheme: String
    let isTrustedPeer: Bool
    /// The client certificate's `X-Forwarded-Client-Cert` element, when it showed one (mutual TLS).
    let clientCertificate: String?
    /// The fields added after an HTTP/1.1 head's own, with the blank line.
    private let suffix11: ByteBuffer
    /// The same for an HTTP/1.0 head: plus `Connection: keep-alive`.
    private let suffix10: ByteBuffer

    init(peer: ClientAddress?, isTrustedPeer: Bool, scheme: String = "http", clientCertificate: String? = nil) {
        if let peer {
            client = peer.description
            forwardedElement = "for=\(peer.isIPv4 ? client : "\"[\(client)]\"");proto=\(scheme)"
        } else {
            client = "unknown"
            forwardedElement = "for=unknown;proto=\(scheme)"
        }
        self.scheme = scheme
        self.isTrustedPeer = isTrustedPeer
        self.clientCertificate = clientCertificate
        var fields = "x-forwarded-for: \(client)\r\nx-forwarded-proto: \(scheme)\r\nforwarded: \(forwardedElement)\r\n"
        if let clientCertificate { fields += "x-forwarded-client-cert: \(clientCertificate)\r\n" }
        suffix11 = ByteBuffer(string: fields + "\r\n")
        suffix10 = ByteBuffer(string: fields + "connection: keep-alive\r\n\r\n")
    }

    /// The head `head` as the backend gets it.
    func head(for head: ClientRequestHead, allocator: ByteBufferAllocator) -> Head {
        if !head.needsFieldEdits {
            // Nothing to drop or merge: the client's fields, then ours (the blank line moves after them).
            let prefix = head.bytes.getSlice(at: head.bytes.readerIndex, length: head.bytes.readableBytes - 2)!
            return Head(prefix: prefix, suffix: head.isHTTP10 ? suffix10 : suffix11)
        }
        return Head(prefix: rewritten(head, allocator: allocator), suffix: ByteBuffer())
    }

    /// Whether `bytes[name]` is a field the proxy sets: X-Forwarded-For, X-Forwarded-Proto, Forwarded or
    /// X-Forwarded-Client-Cert.
    static func isForwardingField(_ bytes: UnsafeRawBufferPointer, _ name: Range<Int>) -> Bool {
        switch name.count {
        case 9: HTTPSyntax.equalsIgnoringCase(bytes, name, "forwarded")
        case 15: HTTPSyntax.equalsIgnoringCase(bytes, name, "x-forwarded-for")
        case 17: HTTPSyntax.equalsIgnoringCase(bytes, name, "x-forwarded-proto")
        case 23: HTTPSyntax.equalsIgnoringCase(bytes, name, "x-forwarded-client-cert")
        default: false
        }
    }

    /// Whether `bytes[name]` is a field an outer proxy reports about the client and the proxy does not set:
    /// X-Real-IP, X-Forwarded-Host, X-Forwarded-Port. From a trusted peer they pass; from anyone else they are
    /// removed — a backend or framework that trusts this proxy would read a client's own `X-Real-IP` as its
    /// address, or its `X-Forwarded-Host` as the host to build links with (password-reset links to another site).
    static func isRelayedField(_ bytes: UnsafeRawBufferPointer, _ name: Range<Int>) -> Bool {
        switch name.count {
        case 9: HTTPSyntax.equalsIgnoringCase(bytes, name, "x-real-ip")
        case 16: HTTPSyntax.equalsIgnoringCase(bytes, name, "x-forwarded-host") || HTTPSyntax.equalsIgnoringCase(bytes, name, "x-forwarded-port")
        default: false
        }
    }

    /// The head rebuilt field by field: hop-by-hop fields (the fixed list and every field Connection names, except
    /// the framing fields) left out, the forwarding fields replaced or, from a trusted peer, extended; the relayed ones kept only from a trusted
    /// peer.
    private func rewritten(_ head: ClientRequestHead, allocator: ByteBufferAllocator) -> ByteBuffer {
        var out = allocator.buffer(capacity: head.bytes.readableBytes + 128)
        var forwardedFor: [String] = []
        var forwarded: [String] = []
        var clientCertificates: [String] = []
        var hasProto = false
        head.bytes.withUnsafeReadableBytes { p in
            let requestLineEnd = HTTPSyntax.lineEnd(p, from: 0)
            out.writeBytes(UnsafeRawBufferPointer(rebasing: p[0..<requestLineEnd]))
            let named = HTTPSyntax.fieldsNamedByConnection(p, from: requestLineEnd)
            HTTPSyntax.forEachField(p, from: requestLineEnd) { name, value, line in
                if HTTPSyntax.isFixedHopByHop(p, name) { return }
                if named.contains(where: { HTTPSyntax.equalsIgnoringCase(p, name, p, $0) }) { return }
                if !isTrustedPeer && Self.isRelayedField(p, name) { return }
                if Self.isForwardingField(p, name) {
                    guard isTrustedPeer else { return }
                    let text = String(decoding: UnsafeRawBufferPointer(rebasing: p[value]), as: UTF8.self)
                    switch name.count {
                    case 15: if !text.isEmpty { forwardedFor.append(text) }
                    case 9: if !text.isEmpty { forwarded.append(text) }
                    case 23: if !text.isEmpty { clientCertificates.append(text) }
                    default:
                        hasProto = true
                        out.writeBytes(UnsafeRawBufferPointer(rebasing: p[line]))
                    }
                    return
                }
                out.writeBytes(UnsafeRawBufferPointer(rebasing: p[line]))
            }
        }
        forwardedFor.append(client)
        forwarded.append(forwardedElement)
        out.writeString("x-forwarded-for: \(forwardedFor.joined(separator: ", "))\r\n")
        if !hasProto { out.writeString("x-forwarded-proto: \(scheme)\r\n") }
        out.writeString("forwarded: \(forwarded.joined(separator: ", "))\r\n")
        if let clientCertificate { clientCertificates.append(clientCertificate) }
        if !clientCertificates.isEmpty { out.writeString("x-forwarded-client-cert: \(clientCertificates.joined(separator: ","))\r\n") }
        if head.isHTTP10 { out.writeString("connection: keep-alive\r\n") }
        if let upgrade = head.upgrade {
            // Hop-by-hop, so dropped above; a protocol switch the proxy will carry is asked for again on this hop.
            out.writeString("connection: upgrade\r\nupgrade: \(head.text(upgrade))\r\n")
        }
        out.writeString("\r\n")
        return out
    }
}
