import Foundation
import NIOSSL

/// Settings of a ``PostgresSessionStore``: where the server is, and the limits that keep an outage from
/// hanging requests.
public struct PostgresSessionStoreConfiguration: Sendable, Hashable, Codable {
    /// Whether to talk TLS to the server, and what to check of its certificate: libpq's `sslmode`s.
    public enum TLSMode: String, Sendable, Hashable, Codable, CaseIterable {
        /// Plain TCP.
        case disable
        /// TLS when the server offers it, plain otherwise; the certificate is not checked (unless
        /// ``PostgresSessionStoreConfiguration/rootCertificatePath`` is given: then its chain is, as libpq does).
        case prefer
        /// TLS or no connection; the certificate is checked as for ``prefer``.
        case require
        /// TLS, and the certificate must chain to a trusted root (the root certificate file, else the system's).
        case verifyCA = "verify-ca"
        /// As ``verifyCA``, and the certificate must name the host.
        case verifyFull = "verify-full"
    }

    /// Server host name or address. Default `127.0.0.1`.
    public var host: String
    /// Server port. Default 5432.
    public var port: Int
    /// A Unix socket path to use instead of host and port. Default none.
    public var unixSocketPath: String?
    /// Default `postgres`.
    public var username: String
    /// Default none (trust or peer authentication).
    public var password: String?
    /// Database name; `nil` means the user name. Default `nil`.
    public var database: String?
    /// Default ``TLSMode/prefer``.
    public var tls: TLSMode
    /// PEM file of the certificates that may sign the server's (libpq's `sslrootcert`). Default none: the system's
    /// trusted roots, for ``TLSMode/verifyCA`` and ``TLSMode/verifyFull``.
    public var rootCertificatePath: String?
    /// The table that holds the sessions (letters, digits and `_`). Default `concord_sessions`.
    public var tableName: String
    /// Most connections this process opens. Default 16.
    public var maximumConnections: Int
    /// Longest wait for a new connection. Default 2 s.
    public var connectTimeout: Duration
    /// Longest time one store operation may take (waiting for a connection included) before it fails with
    /// `SessionStoreError.unavailable`. Default 2 s.
    public var operationTimeout: Duration
    /// How often ``PostgresSessionStore/run()`` deletes expired rows. Default 60 s.
    public var sweepInterval: Duration
    /// The largest payload accepted; bigger ones throw `SessionStoreError.tooLarge`. Default 1 MiB.
    public var maximumPayloadSize: Int

    public init(
        host: String = "127.0.0.1",
        port: Int = 5432,
        unixSocketPath: String? = nil,
        username: String = "postgres",
        password: String? = nil,
        database: String? = nil,
        tls: TLSMode = .prefer,
        rootCertificatePath: String? = nil,
        tableName: String = "concord_sessions",
        maximumConnections: Int = 16,
        connectTimeout: Duration = .seconds(2),
        operationTimeout: Duration = .seconds(2),
        sweepInterval: Duration = .seconds(60),
        maximumPayloadSize: Int = 1 << 20
    ) {
        self.host = host
        self.port = port
        self.unixSocketPath = unixSocketPath
        self.username = username
        self.password = password
        self.database = database
        self.tls = tls
        self.rootCertificatePath = rootCertificatePath
        self.tableName = tableName
        self.maximumConnections = maximumConnections
        self.connectTimeout = connectTimeout
        self.operationTimeout = operationTimeout
        self.sweepInterval = sweepInterval
        self.maximumPayloadSize = maximumPayloadSize
    }

    /// Settings from a URL such as `postgres://user:secret@127.0.0.1:5432/db?sslmode=verify-full&sslrootcert=ca.pem`
    /// (`sslmode`: `disable`, `prefer`, `require`, `verify-ca` or `verify-full`, as libpq reads them; `sslrootcert`:
    /// a PEM file); everything the URL leaves out keeps its default. Other parameters are refused, so a misspelt
    /// one does not go unnoticed.
    public init(url: String) throws {
        guard let components = URLComponents(string: url), ["postgres", "postgresql"].contains(components.scheme),
            let host = components.host, !host.isEmpty
        else {
            throw PostgresSessionStoreConfigurationError(reason: "expected postgres://[user[:password]@]host[:port][/database]")
        }
        self.init(host: host)
        if let given = components.port {
            // Not left to the connection: it would take the port modulo 65536 and reach another server.
            guard (1...65535).contains(given) else {
                throw PostgresSessionStoreConfigurationError(reason: "port \(given) is out of range (1...65535)")
            }
            port = given
        }
        username = components.user.flatMap { $0.removingPercentEncoding } ?? username
        password = components.password.flatMap { $0.removingPercentEncoding }
        let path = components.path.drop { $0 == "/" }
        database = path.isEmpty ? nil : String(path)
        for item in components.queryItems ?? [] {
            switch item.name {
            case "sslmode":
                guard let tls = item.value.flatMap(TLSMode.init(rawValue:)) else {
                    throw PostgresSessionStoreConfigurationError(
                        reason: "sslmode must be one of \(TLSMode.allCases.map(\.rawValue).joined(separator: ", ")), got '\(item.value ?? "")'")
                }
                self.tls = tls
            case "sslrootcert":
                guard let path = item.value, !path.isEmpty else {
                    throw PostgresSessionStoreConfigurationError(reason: "sslrootcert needs a file path")
                }
                rootCertificatePath = path
            default:
                throw PostgresSessionStoreConfigurationError(
                    reason: "unknown parameter '\(item.name)' (known: sslmode, sslrootcert)")
            }
        }
        if let path = rootCertificatePath {
            guard tls != .disable else {
                throw PostgresSessionStoreConfigurationError(reason: "sslrootcert is for TLS, but sslmode is disable")
            }
            guard FileManager.default.isReadableFile(atPath: path) else {
                throw PostgresSessionStoreConfigurationError(reason: "sslrootcert \(path): no readable file there")
            }
        }
    }

    /// The TLS settings of ``tls`` and ``rootCertificatePath`` (`nil` for ``TLSMode/disable``).
    var tlsConfiguration: TLSConfiguration? {
        guard tls != .disable else { return nil }
        var configuration = TLSConfiguration.makeClientConfiguration()
        if let rootCertificatePath { configuration.trustRoots = .file(rootCertificatePath) }
        configuration.certificateVerification = switch tls {
        case .disable, .prefer, .require: rootCertificatePath == nil ? .none : .noHostnameVerification
        case .verifyCA: .noHostnameVerification
        case .verifyFull: .fullVerification
        }
        return configuration
    }
}

/// A PostgreSQL URL that ``PostgresSessionStoreConfiguration/init(url:)`` could not read. The message leaves the
/// URL out, since it may hold a password.
public struct PostgresSessionStoreConfigurationError: Error, Sendable, CustomStringConvertible {
    public var reason: String
    public var description: String { "invalid PostgreSQL URL: \(reason)" }
}
