import NIOCore
import NIOSSL

extension HTTPProxyHandler {
    /// Who the client of a connection is, as every request on it tells the backend: its address and the forwarding
    /// fields, with its certificate's identity after a mutual-TLS handshake. Made once per connection — for an
    /// HTTP/2 connection once for all its streams (each stream's handler would otherwise make it again).
    struct ClientIdentity: Sendable {
        let peer: ClientAddress?
        let forwarding: RequestForwarding

        /// The client of `channel`: the address a PROXY protocol header named, or the connection's own.
        init(channel: any Channel, runtime: ProxyRuntime, proxied: ProxiedAddresses?) {
            self.init(peer: proxied?.source ?? channel.remoteAddress, runtime: runtime)
        }

        /// The client whose address is `address` (as the direct HTTP engine accepted it, or as above).
        init(peer address: SocketAddress?, runtime: ProxyRuntime) {
            let peer = ClientAddress(address)
            self.init(peer: peer, forwarding: RequestForwarding(
                peer: peer, isTrustedPeer: peer.map { runtime.extractor.isTrusted($0) } ?? false,
                scheme: runtime.tlsContext == nil ? "http" : "https"))
        }

        /// What a handler holds until it is added to its channel.
        static let notYetKnown = ClientIdentity(peer: nil, forwarding: RequestForwarding(peer: nil, isTrustedPeer: false))

        private init(peer: ClientAddress?, forwarding: RequestForwarding) {
            self.peer = peer
            self.forwarding = forwarding
        }

        /// With the certificate the client showed in `tlsHandler`'s handshake (`X-Forwarded-Client-Cert`); the same
        /// without one (no handshake yet, or no certificate asked for or shown).
        func presenting(certificateFrom tlsHandler: NIOSSLServerHandler?, runtime: ProxyRuntime) -> ClientIdentity {
            guard let certificate = tlsHandler?.peerCertificate else { return self }
            do {
                let identity = try ClientCertificateIdentity(certificate: certificate)
                return ClientIdentity(peer: peer, forwarding: RequestForwarding(
                    peer: peer, isTrustedPeer: forwarding.isTrustedPeer, scheme: forwarding.scheme,
                    clientCertificate: identity.fieldValue))
            } catch {
                // BoringSSL accepted it, so this is unlikely; the requests then go without the field.
                runtime.logger.warning("could not read the client certificate of \(peer?.description ?? "a client"): \(error)")
                return self
            }
        }
    }
}
