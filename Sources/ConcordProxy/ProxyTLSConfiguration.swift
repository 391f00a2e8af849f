import Foundation
import NIOSSL

/// TLS on the client listener (`tls:` in YAML, `--tls-certificate` / `--tls-key`): the proxy terminates TLS and
/// talks plain HTTP (or, in `tcp` mode, plain TCP) to its backends, as nginx's `listen … ssl` and HAProxy's
/// `bind … ssl crt` do. The files are read at start and again on every reload (SIGHUP), so a renewed
/// certificate is picked up without a restart; connections already open keep the one they started with.
public struct ProxyTLSConfiguration: Sendable, Hashable, Codable {
    /// The lowest protocol version a client may use.
    public enum MinimumVersion: String, Sendable, Hashable, Codable, SettingChoice {
        case tls12 = "1.2"
        case tls13 = "1.3"
    }

    /// Whether a client must show a certificate when `clientCA` is set.
    public enum ClientCertificateMode: String, Sendable, Hashable, Codable, SettingChoice {
        /// Every client shows one the CA signed, or completes no handshake.
        case required
        /// A client may show none (it is served without an identity); one it shows must be one the CA signed.
        case optional
    }

    /// A certificate chosen by the name a client asks for (SNI), instead of the default one.
    public struct SNICertificate: Sendable, Hashable, Codable {
        /// Host names (`shop.example`) or wildcards for one label (`*.shop.example` matches `api.shop.example`,
        /// not `shop.example` nor `a.b.shop.example`), as in the certificate.
        public var serverNames: [String]
        public var certificateChain: String
        public var privateKey: String

        public init(serverNames: [String], certificateChain: String, privateKey: String) {
            self.serverNames = serverNames
            self.certificateChain = certificateChain
            self.privateKey = privateKey
        }

        private enum CodingKeys: String, CodingKey, CaseIterable { case serverNames, certificateChain, privateKey }

        public init(from decoder: any Decoder) throws {
            try SettingsDecoding.rejectUnknownKeys(in: decoder, known: CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.init(serverNames: try c.decode([String].self, forKey: .serverNames),
                      certificateChain: try c.decode(String.self, forKey: .certificateChain),
                      privateKey: try c.decode(String.self, forKey: .privateKey))
        }
    }

    /// PEM file: the server certificate first, then any intermediate certificates. Served to clients that send no
    /// server name, or one that no `sni` entry lists.
    public var certificateChain: String
    /// PEM file: the certificate's private key, unencrypted (PKCS#8, or EC / RSA in their traditional form).
    public var privateKey: String
    /// Default `1.2`: TLS 1.0 and 1.1 are deprecated (RFC 8996).
    public var minimumVersion: MinimumVersion
    /// More certificates, each for the server names it lists (one proxy in front of several sites). Default none.
    public var sni: [SNICertificate]
    /// PEM file of the certificate authorities whose client certificates are accepted. Set, every client must
    /// present a certificate one of them signed (mutual TLS): a client without one completes no handshake.
    /// Default none (no client certificates asked for).
    public var clientCA: String?
    /// With `clientCA`: `required` (the default) or `optional`.
    public var clientCertificate: ClientCertificateMode
    /// Offer HTTP/2 to clients (ALPN `h2`, then `http/1.1`; `mode: http` only). Each HTTP/2 stream is one request
    /// with every L7 behaviour of HTTP/1.1; backends still get HTTP/1.1. Default `false` (as nginx's `http2 off`).
    public var http2: Bool

    public init(certificateChain: String, privateKey: String, minimumVersion: MinimumVersion = .tls12, sni: [SNICertificate] = [],
                clientCA: String? = nil, clientCertificate: ClientCertificateMode = .required, http2: Bool = false) {
        self.certificateChain = certificateChain
        self.privateKey = privateKey
        self.minimumVersion = minimumVersion
        self.sni = sni
        self.clientCA = clientCA
        self.clientCertificate = clientCertificate
        self.http2 = http2
    }

    private enum CodingKeys: String, CodingKey, CaseIterable { case certificateChain, privateKey, minimumVersion, sni, clientCA, clientCertificate, http2 }

    public init(from decoder: any Decoder) throws {
        try SettingsDecoding.rejectUnknownKeys(in: decoder, known: CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            certificateChain: try c.decode(String.self, forKey: .certificateChain),
            privateKey: try c.decode(String.self, forKey: .privateKey),
            minimumVersion: try c.decodeIfPresent(MinimumVersion.self, forKey: .minimumVersion) ?? .tls12,
            sni: try c.decodeIfPresent([SNICertificate].self, forKey: .sni) ?? [],
            clientCA: try c.decodeIfPresent(String.self, forKey: .clientCA),
            clientCertificate: try c.decodeIfPresent(ClientCertificateMode.self, forKey: .clientCertificate) ?? .required,
            http2: try c.decodeIfPresent(Bool.self, forKey: .http2) ?? false)
    }

    /// Checks what can be checked without the files: the `sni` server names, and that an optional client
    /// certificate has a CA to be checked against.
    func validate() throws(ProxyError) {
        _ = try SNICertificateTable.names(of: sni)
        if clientCertificate == .optional && clientCA == nil {
            throw .invalidSetting("tls clientCertificate: optional needs tls clientCA (the CA a shown certificate is checked against)")
        }
    }

    /// What the listener serves: the context every new client connection's handshake uses, and when each
    /// certificate in it (the default one, then the `sni` ones) stops being valid.
    struct Listener: Sendable {
        var context: NIOSSLContext
        var expiries: [CertificateExpiry]
        /// What it was made from (``source(mode:)``).
        var source: Source
    }

    /// What ``makeContext(mode:)`` reads: the settings and every file's bytes. A reload whose source is equal keeps
    /// the context it has — and with it the session-ticket keys BoringSSL made for it, which a new context would
    /// replace, so every returning client did a full handshake once after each SIGHUP (seen with `openssl
    /// s_client -sess_in`). A renewed certificate or key changes the bytes, and so still gets a new context.
    struct Source: Sendable, Equatable {
        var settings: ProxyTLSConfiguration
        var mode: ProxyMode
        var files: [Data?]
    }

    func source(mode: ProxyMode) -> Source {
        let paths = [certificateChain, privateKey] + sni.flatMap { [$0.certificateChain, $0.privateKey] } + (clientCA.map { [$0] } ?? [])
        return Source(settings: self, mode: mode, files: paths.map { FileManager.default.contents(atPath: $0) })
    }

    /// Reads every file and builds the listener's context. The error names the file and what is wrong with it
    /// (missing, not PEM, key not matching the certificate).
    func makeContext(mode: ProxyMode) throws(ProxyError) -> Listener {
        let source = source(mode: mode)
        let identity = try Self.loadIdentity(chain: certificateChain, key: privateKey, label: "tls")
        var expiries = [CertificateExpiry(file: certificateChain, notValidAfter: Int(identity.chain[0].notValidAfter))]
        var table = SNICertificateTable()
        let names = try SNICertificateTable.names(of: sni)
        for (index, entry) in sni.enumerated() {
            let loaded = try Self.loadIdentity(chain: entry.certificateChain, key: entry.privateKey, label: "tls sni[\(index)]")
            for name in names[index] { table.add(name, loaded) }
            expiries.append(CertificateExpiry(file: entry.certificateChain, notValidAfter: Int(loaded.chain[0].notValidAfter)))
        }
        var configuration = Self.serverConfiguration(identity)
        configuration.minimumTLSVersion = minimumVersion == .tls13 ? .tlsv13 : .tlsv12
        // After its close_notify the proxy closes the socket at once, as nginx does, instead of waiting for the
        // client's (NIOSSL's default waits up to 5 s: every closing connection, and a stop, held that long — the
        // proxy handler reads no more after its last response, and a bare EOF does not end the wait).
        configuration.shutdownTimeout = .zero
        // Offer HTTP/1.1 by ALPN in http mode, after HTTP/2 when `http2` is on; a TCP proxy does not know the
        // protocol.
        if mode == .http { configuration.applicationProtocols = http2 ? ["h2", "http/1.1"] : ["http/1.1"] }
        if let clientCA {
            configuration.certificateVerification = clientCertificate == .optional ? .optionalVerification : .noHostnameVerification
            configuration.trustRoots = .certificates(try Self.loadAuthorities(clientCA, setting: "tls clientCA"))
        }
        if !table.isEmpty {
            let chosen = table
            configuration.sslContextCallback = { values, promise in
                var override = NIOSSLContextConfigurationOverride()
                if let name = values.serverHostname, let match = chosen.identity(for: name) {
                    override.certificateChain = match.chain.map { .certificate($0) }
                    override.privateKey = .privateKey(match.key)
                }
                promise.succeed(override)
            }
        }
        do { return Listener(context: try NIOSSLContext(configuration: configuration), expiries: expiries, source: source) } catch {
            throw .invalidSetting("tls: cannot use the certificate in \(certificateChain) (\(error))")
        }
    }

    /// A certificate chain and its key, read and checked to fit each other.
    struct Identity: Sendable {
        var chain: [NIOSSLCertificate]
        var key: NIOSSLPrivateKey
    }

    private static func serverConfiguration(_ identity: Identity) -> TLSConfiguration {
        TLSConfiguration.makeServerConfiguration(
            certificateChain: identity.chain.map { .certificate($0) }, privateKey: .privateKey(identity.key))
    }

    static func loadIdentity(chain chainPath: String, key keyPath: String, label: String) throws(ProxyError) -> Identity {
        let chainBytes = try read(chainPath, setting: "\(label) certificateChain")
        let keyBytes = try read(keyPath, setting: "\(label) privateKey")
        let chain: [NIOSSLCertificate]
        do { chain = try NIOSSLCertificate.fromPEMBytes(chainBytes) } catch {
            throw .invalidSetting("\(label) certificateChain \(chainPath): not a PEM certificate chain (\(error))")
        }
        guard !chain.isEmpty else {
            throw .invalidSetting("\(label) certificateChain \(chainPath): no certificate in it (expected -----BEGIN CERTIFICATE-----)")
        }
        let key: NIOSSLPrivateKey
        do { key = try NIOSSLPrivateKey(bytes: keyBytes, format: .pem) } catch {
            throw .invalidSetting("\(label) privateKey \(keyPath): not an unencrypted PEM private key (\(error))")
        }
        let identity = Identity(chain: chain, key: key)
        // BoringSSL checks that the key fits the certificate when a context is made from them.
        do { _ = try NIOSSLContext(configuration: serverConfiguration(identity)) } catch {
            throw .invalidSetting("\(label): the private key \(keyPath) does not fit the certificate in \(chainPath) (\(error))")
        }
        return identity
    }

    /// The certificates of a CA file (one or more PEM certificates); the error names the file.
    static func loadAuthorities(_ path: String, setting: String) throws(ProxyError) -> [NIOSSLCertificate] {
        let bytes = try read(path, setting: setting)
        let roots: [NIOSSLCertificate]
        do { roots = try NIOSSLCertificate.fromPEMBytes(bytes) } catch {
            throw .invalidSetting("\(setting) \(path): not a PEM certificate file (\(error))")
        }
        guard !roots.isEmpty else { throw .invalidSetting("\(setting) \(path): no certificate in it") }
        return roots
    }

    private static func read(_ path: String, setting: String) throws(ProxyError) -> [UInt8] {
        guard !path.isEmpty else { throw .invalidSetting("\(setting): no file given") }
        do { return Array(try Data(contentsOf: URL(fileURLWithPath: path))) } catch {
            let reason = (error as NSError).code == NSFileReadNoSuchFileError ? "no such file" : "cannot read it (\(error.localizedDescription))"
            throw .invalidSetting("\(setting) \(path): \(reason)")
        }
    }
}
