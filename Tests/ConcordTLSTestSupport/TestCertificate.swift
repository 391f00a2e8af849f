import Foundation
import NIOSSL

/// Two self-signed test certificates (EC P-256, valid until 2126, names `localhost` and `127.0.0.1`), made once with
/// `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -days 36500 -nodes -subj /CN=concord-test-a
/// -addext subjectAltName=DNS:localhost,IP:127.0.0.1`. Test-only keys: they protect nothing. Shared by the proxy's
/// and the Redis client's TLS tests (a library target only tests depend on).
public enum TestCertificate: String, CaseIterable, Sendable {
    case a, b

    public var certificatePEM: String {
        switch self {
        case .a: """
-----BEGIN CERTIFICATE-----
MIIBpDCCAUugAwIBAgIUBcWuV95yVNEsMrx4lc7zdbzg1JYwCgYIKoZIzj0EAwIw
GTEXMBUGA1UEAwwOY29uY29yZC10ZXN0LWEwIBcNMjYxMjAyMDAyMjIwWhgPMjEy
NjExMDgwMDIyMjBaMBkxFzAVBgNVBAMMDmNvbmNvcmQtdGVzdC1hMFkwEwYHKoZI
zj0CAQYIKoZIzj0DAQcDQgAEaR1Hm0eYNrhTNkayvrMw0JRhycLEYuThWxj915GX
WAiesAkCt9yNgqNmz2tmAB1fLGecnqvmuZIphmB4tGDRPaNvMG0wHQYDVR0OBBYE
FAVmnYwaHbK7McVMpe0TZdJ94LnIMB8GA1UdIwQYMBaAFAVmnYwaHbK7McVMpe0T
ZdJ94LnIMA8GA1UdEwEB/wQFMAMBAf8wGgYDVR0RBBMwEYIJbG9jYWxob3N0hwR/
AAABMAoGCCqGSM49BAMCA0cAMEQCIDKQ8aoqJfTCUgEk0v9saieBbJvpQyZmIS3a
a984Lt7WAiBwJ8Tfmru9FPeQmKQ7TjWflwQISXA4Vr2Vr2HGD+PCsg==
-----END CERTIFICATE-----
"""
        case .b: """
-----BEGIN CERTIFICATE-----
MIIBpjCCAUugAwIBAgIUfMRl3JEsuvnWLCMDfeMhV7sezV4wCgYIKoZIzj0EAwIw
GTEXMBUGA1UEAwwOY29uY29yZC10ZXN0LWIwIBcNMjYxMjAyMDAyMjIwWhgPMjEy
NjExMDgwMDIyMjBaMBkxFzAVBgNVBAMMDmNvbmNvcmQtdGVzdC1iMFkwEwYHKoZI
zj0CAQYIKoZIzj0DAQcDQgAEfK/tg+6sAOSsHGnQy5edJqEIhq9ab1GOVJzfMiDS
AzkzfeGVbShTir+5OyGxVQO0n+MWeUOisDeaF0XmP2zFBqNvMG0wHQYDVR0OBBYE
FFq+aaJCwY46MaGpW1m2jOR/GK12MB8GA1UdIwQYMBaAFFq+aaJCwY46MaGpW1m2
jOR/GK12MA8GA1UdEwEB/wQFMAMBAf8wGgYDVR0RBBMwEYIJbG9jYWxob3N0hwR/
AAABMAoGCCqGSM49BAMCA0kAMEYCIQDswcoPHJJ1T3VVVwIK+9t1p4uj1LuxhK9E
z0QhH4PEGgIhAIpbC55/CNWiz1LuLLP6ycYp7LX8+DdS/FgNJJKQqHrl
-----END CERTIFICATE-----
"""
        }
    }

    public var privateKeyPEM: String {
        switch self {
        case .a: """
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQggFd4xKjlVDNAII2w
w1uJq0xu/V8AAQVBiJxf+iv3AgShRANCAARpHUebR5g2uFM2RrK+szDQlGHJwsRi
5OFbGP3XkZdYCJ6wCQK33I2Co2bPa2YAHV8sZ5yeq+a5kimGYHi0YNE9
-----END PRIVATE KEY-----
"""
        case .b: """
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgtHaM7eNbhAJQpbGX
UqQ4ZQrR3LGoZGxbTHbrXuyV2zOhRANCAAR8r+2D7qwA5KwcadDLl50moQiGr1pv
UY5UnN8yINIDOTN94ZVtKFOKv7k7IbFVA7Sf4xZ5Q6KwN5oXReY/bMUG
-----END PRIVATE KEY-----
"""
        }
    }

    /// Writes the chain and the key to `NAMEcert.pem` and `NAMEkey.pem` in `directory` (overwriting: a renewal) and
    /// returns their paths.
    @discardableResult
    public func write(to directory: URL, as name: String = "") throws -> (chain: String, key: String) {
        let chain = directory.appendingPathComponent("\(name)cert.pem"), key = directory.appendingPathComponent("\(name)key.pem")
        try certificatePEM.write(to: chain, atomically: true, encoding: .utf8)
        try privateKeyPEM.write(to: key, atomically: true, encoding: .utf8)
        return (chain.path, key.path)
    }

    /// A client context that trusts this certificate only (for any server name when `anyName`: both test
    /// certificates are for `localhost`, and SNI tests ask for other names).
    /// With `presenting`, the client shows that certificate (mutual TLS); `applicationProtocols` are offered by ALPN.
    public func clientContext(anyName: Bool = false, presenting identity: TestCertificate? = nil,
                              applicationProtocols: [String] = []) throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.applicationProtocols = applicationProtocols
        if anyName { configuration.certificateVerification = .noHostnameVerification }
        if let identity {
            configuration.certificateChain = try NIOSSLCertificate.fromPEMBytes(Array(identity.certificatePEM.utf8)).map { .certificate($0) }
            configuration.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: Array(identity.privateKeyPEM.utf8), format: .pem))
        }
        configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(certificatePEM.utf8)))
        return try NIOSSLContext(configuration: configuration)
    }

    /// A server context that presents this certificate (a TLS test backend); with `clientCertificatesFrom`, it
    /// requires a client certificate that one signed (mutual TLS).
    public func serverContext(clientCertificatesFrom issuer: TestCertificate? = nil) throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMBytes(Array(certificatePEM.utf8)).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(privateKeyPEM.utf8), format: .pem)))
        if let issuer {
            configuration.certificateVerification = .noHostnameVerification
            configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(issuer.certificatePEM.utf8)))
        }
        return try NIOSSLContext(configuration: configuration)
    }

    /// Runs `body` with a new temporary directory, removed afterwards (also on failure).
    public static func withDirectory<T>(_ body: (URL) async throws -> T) async throws -> T {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("concord-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        return try await body(directory)
    }
}
