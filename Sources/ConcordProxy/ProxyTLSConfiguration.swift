import Foundation
import NIOSSL

/// TLS on the client listener (`tls:` in YAML, `--tls-certificate` / `--tls-key`): the proxy terminates TLS and
/// talks plain HTTP (or, in `tcp` mode, plain TCP) to its backends, as nginx's `listen … ssl` and HAProxy's
/// `bind … ssl crt` do. The files are read at start and again on every reload (SIGHUP), so a renewed
/// certificate is picked up without a restart; connections already open keep the one they started with.
public struct ProxyTLSConfiguration: Sendable, Hashable, Codable {
    /// The lowest protocol version a client may use.
    public enum MinimumVersion: String, Sendable, Hashable, Codable, CaseIterable {
        case tls12 = "1.2"
        case tls13 = "1.3"
    }

    /// PEM file: the server certificate first, then any intermediate certificates.
    public var certificateChain: String
    /// PEM file: the certificate's private key, unencrypted (PKCS#8, or EC / RSA in their traditional form).
    public var privateKey: String
    /// Default `1.2`: TLS 1.0 and 1.1 are deprecated (RFC 8996).
    public var minimumVersion: MinimumVersion

    public init(certificateChain: String, privateKey: String, minimumVersion: MinimumVersion = .tls12) {
        self.certificateChain = certificateChain
        self.privateKey = privateKey
        self.minimumVersion = minimumVersion
    }

    private enum CodingKeys: String, CodingKey { case certificateChain, privateKey, minimumVersion }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            certificateChain: try c.decode(String.self, forKey: .certificateChain),
            privateKey: try c.decode(String.self, forKey: .privateKey),
            minimumVersion: try c.decodeIfPresent(MinimumVersion.self, forKey: .minimumVersion) ?? .tls12)
    }

    /// Reads both files and builds the context every new client connection's handshake uses. The error names the
    /// file and what is wrong with it (missing, not PEM, key not matching the certificate).
    func makeContext(mode: ProxyMode) throws(ProxyError) -> NIOSSLContext {
        let chainBytes = try Self.read(certificateChain, setting: "certificateChain")
        let keyBytes = try Self.read(privateKey, setting: "privateKey")
        let chain: [NIOSSLCertificate]
        do { chain = try NIOSSLCertificate.fromPEMBytes(chainBytes) } catch {
            throw .invalidSetting("tls certificateChain \(certificateChain): not a PEM certificate chain (\(error))")
        }
        guard !chain.isEmpty else {
            throw .invalidSetting("tls certificateChain \(certificateChain): no certificate in it (expected -----BEGIN CERTIFICATE-----)")
        }
        let key: NIOSSLPrivateKey
        do { key = try NIOSSLPrivateKey(bytes: keyBytes, format: .pem) } catch {
            throw .invalidSetting("tls privateKey \(privateKey): not an unencrypted PEM private key (\(error))")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = minimumVersion == .tls13 ? .tlsv13 : .tlsv12
        // After its close_notify the proxy waits this long for the client's before it closes the socket anyway
        // (NIOSSL's default is 5 s, which would hold every closing connection, and a stop, that long).
        configuration.shutdownTimeout = .seconds(1)
        // Offer HTTP/1.1 by ALPN in http mode (the proxy speaks no HTTP/2); a TCP proxy does not know the protocol.
        if mode == .http { configuration.applicationProtocols = ["http/1.1"] }
        do { return try NIOSSLContext(configuration: configuration) } catch {
            throw .invalidSetting("tls: the private key \(privateKey) does not fit the certificate in \(certificateChain) (\(error))")
        }
    }

    private static func read(_ path: String, setting: String) throws(ProxyError) -> [UInt8] {
        guard !path.isEmpty else { throw .invalidSetting("tls \(setting): no file given") }
        do { return Array(try Data(contentsOf: URL(fileURLWithPath: path))) } catch {
            let reason = (error as NSError).code == NSFileReadNoSuchFileError ? "no such file" : "cannot read it (\(error.localizedDescription))"
            throw .invalidSetting("tls \(setting) \(path): \(reason)")
        }
    }
}
