import Foundation
import NIOCore
import NIOSSL

/// TLS towards Redis: a `rediss://` URL (managed Redis services such as ElastiCache with in-transit encryption or
/// Azure Cache for Redis accept nothing else), or `redis-server --tls-port`.
///
/// - `caFile`: PEM certificates to trust; `nil` = the system's trust store.
/// - `certificateChain` + `privateKey`: a client certificate, for servers that ask for one (`tls-auth-clients`).
/// - `serverName`: the name sent as SNI and checked against the server's certificate; `nil` = the URL's host when
///   it is a name (an IP address is checked against the certificate's IP entries, and no SNI is sent).
/// - `verify`: `false` accepts any certificate (encryption without authentication; for tests, never production).
///
/// In a URL: `rediss://[[user]:password@]host[:port][/db][?caFile=PATH&certificateChain=PATH&privateKey=PATH
/// &serverName=NAME&verify=false]` (values percent-decoded).
public struct RedisTLS: Sendable, Hashable {
    public var caFile: String?
    public var certificateChain: String?
    public var privateKey: String?
    public var serverName: String?
    public var verify: Bool

    public init(
        caFile: String? = nil, certificateChain: String? = nil, privateKey: String? = nil, serverName: String? = nil,
        verify: Bool = true
    ) {
        self.caFile = caFile
        self.certificateChain = certificateChain
        self.privateKey = privateKey
        self.serverName = serverName
        self.verify = verify
    }

    /// The URL query parameters this type reads.
    static let queryKeys: Set<String> = ["caFile", "certificateChain", "privateKey", "serverName", "verify"]

    /// From `rediss://` query parameters (already split and decoded).
    init(query: [String: String]) throws(RedisClientError) {
        self.init(
            caFile: query["caFile"], certificateChain: query["certificateChain"], privateKey: query["privateKey"],
            serverName: query["serverName"])
        switch query["verify"] {
        case nil, "true": verify = true
        case "false": verify = false
        case let other?: throw .invalidConfiguration("verify=\(other): expected true or false")
        }
    }

    /// Reads the files and builds the context every connection shares (loading certificates is far dearer than a
    /// handshake, so it happens once per client, not per connection). Errors name the file.
    public func makeContext() throws(RedisClientError) -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        if !verify { configuration.certificateVerification = .none }
        if let caFile { configuration.trustRoots = .certificates(try Self.certificates(caFile, setting: "caFile")) }
        switch (certificateChain, privateKey) {
        case (nil, nil):
            break
        case (let chainPath?, let keyPath?):
            configuration.certificateChain = try Self.certificates(chainPath, setting: "certificateChain").map { .certificate($0) }
            let keyBytes = try Self.read(keyPath, setting: "privateKey")
            do {
                configuration.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: keyBytes, format: .pem))
            } catch {
                throw .invalidConfiguration("privateKey \(keyPath): not an unencrypted PEM private key (\(error))")
            }
        default:
            throw .invalidConfiguration("certificateChain and privateKey go together (a client certificate needs both)")
        }
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            // BoringSSL checks here that the key fits the certificate.
            throw .invalidConfiguration("TLS settings not usable: \(error)")
        }
    }

    /// The handler to put first on a connection to `host`.
    func clientHandler(context: NIOSSLContext, host: String) throws(RedisClientError) -> NIOSSLClientHandler {
        let isAddress = (try? SocketAddress(ipAddress: host, port: 0)) != nil
        do {
            return try NIOSSLClientHandler(context: context, serverHostname: serverName ?? (isAddress ? nil : host))
        } catch {
            throw .invalidConfiguration("TLS server name \(serverName ?? host): \(error)")
        }
    }

    private static func certificates(_ path: String, setting: String) throws(RedisClientError) -> [NIOSSLCertificate] {
        let bytes = try read(path, setting: setting)
        let certificates: [NIOSSLCertificate]
        do { certificates = try NIOSSLCertificate.fromPEMBytes(bytes) } catch {
            throw .invalidConfiguration("\(setting) \(path): not a PEM certificate file (\(error))")
        }
        guard !certificates.isEmpty else {
            throw .invalidConfiguration("\(setting) \(path): no certificate in it (expected -----BEGIN CERTIFICATE-----)")
        }
        return certificates
    }

    private static func read(_ path: String, setting: String) throws(RedisClientError) -> [UInt8] {
        guard FileManager.default.fileExists(atPath: path) else { throw .invalidConfiguration("\(setting) \(path): no such file") }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .invalidConfiguration("\(setting) \(path): cannot read it")
        }
        return Array(data)
    }
}
