import Foundation
import NIOCore
import NIOSSL

/// TLS towards the backends (`backendTLS:` in YAML, `--backend-tls` / `--backend-ca`): the proxy speaks HTTPS (or,
/// in `tcp` mode, TLS) to every backend and checks its certificate — HAProxy's `server … ssl verify required
/// ca-file`, nginx's `proxy_pass https://` with `proxy_ssl_verify on`. For networks between proxy and app servers
/// that are not trusted. Health checks with a path go over TLS too; TCP-connect checks only connect.
public struct BackendTLSConfiguration: Sendable, Hashable, Codable {
    /// PEM file of the certificate authorities that sign the backends' certificates (e.g. a private CA); `nil`:
    /// the system's trust store.
    public var caFile: String?
    /// The name every backend's certificate is checked for and sent as SNI; `nil`: each backend's own host (a
    /// backend given by IP address is checked against its certificate's IP entries and gets no SNI).
    public var serverName: String?
    /// Check the backends' certificates. Default `true`; `false` encrypts without knowing who answers (test
    /// set-ups only: anyone on the path can then read the traffic).
    public var verify: Bool
    /// PEM files of a client certificate and its key that the proxy presents to backends that ask for one (mutual
    /// TLS: the app servers then know a request came through the proxy). Both or neither. Default none.
    public var certificateChain: String?
    public var privateKey: String?

    public init(caFile: String? = nil, serverName: String? = nil, verify: Bool = true, certificateChain: String? = nil,
                privateKey: String? = nil) {
        self.caFile = caFile
        self.serverName = serverName
        self.verify = verify
        self.certificateChain = certificateChain
        self.privateKey = privateKey
    }

    private enum CodingKeys: String, CodingKey, CaseIterable { case caFile, serverName, verify, certificateChain, privateKey }

    public init(from decoder: any Decoder) throws {
        try SettingsDecoding.rejectUnknownKeys(in: decoder, known: CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            caFile: try c.decodeIfPresent(String.self, forKey: .caFile),
            serverName: try c.decodeIfPresent(String.self, forKey: .serverName),
            verify: try c.decodeIfPresent(Bool.self, forKey: .verify) ?? true,
            certificateChain: try c.decodeIfPresent(String.self, forKey: .certificateChain),
            privateKey: try c.decodeIfPresent(String.self, forKey: .privateKey))
    }

    /// Reads `caFile` and builds the client context; the error names the file.
    func makeBackendTLS() throws(ProxyError) -> BackendTLS {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        configuration.certificateVerification = verify ? .fullVerification : .none
        if let caFile {
            configuration.trustRoots = .certificates(try ProxyTLSConfiguration.loadAuthorities(caFile, setting: "backendTLS caFile"))
        }
        switch (certificateChain, privateKey) {
        case (nil, nil): break
        case (let chain?, let key?):
            let identity = try ProxyTLSConfiguration.loadIdentity(chain: chain, key: key, label: "backendTLS")
            configuration.certificateChain = identity.chain.map { .certificate($0) }
            configuration.privateKey = .privateKey(identity.key)
        default:
            throw .invalidSetting("backendTLS: certificateChain and privateKey go together (the client certificate and its key)")
        }
        do {
            return BackendTLS(context: try NIOSSLContext(configuration: configuration), serverName: serverName)
        } catch {
            throw .invalidSetting("backendTLS: \(error)")
        }
    }
}

/// The proxy's TLS client side for one configuration generation: one context, a handler per backend connection.
struct BackendTLS: Sendable {
    let context: NIOSSLContext
    let serverName: String?

    /// The TLS handler to put first on a connection to `backend`.
    func clientHandler(for backend: Backend) throws -> NIOSSLClientHandler {
        let host = backend.address.host
        let isAddress = (try? SocketAddress(ipAddress: host, port: 0)) != nil
        return try NIOSSLClientHandler(context: context, serverHostname: serverName ?? (isAddress ? nil : host))
    }
}
