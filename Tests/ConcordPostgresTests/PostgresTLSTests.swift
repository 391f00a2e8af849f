import ConcordSessions
import ConcordTLSTestSupport
import Foundation
import Testing

@testable import ConcordPostgres

/// TLS to a real server with a self-signed certificate (Debian's default setup) that takes TCP connections over TLS
/// only, so a store that reaches it at all talks TLS.
@Suite("PostgresSessionStore TLS", .timeLimit(.minutes(3)))
struct PostgresTLSTests {
    /// The sslmodes read the certificate as libpq does: `prefer` and `require` do not check it (unless a root file is
    /// given), `verify-ca` and `verify-full` do. Before 2026-12-04 `prefer` and `require` checked it against the
    /// system's roots, so a self-signed server took no TLS connection at all (`CERTIFICATE_VERIFY_FAILED`, where psql
    /// connects), and there was no way to name a root.
    @Test func sslModesCheckTheCertificateAsLibpqDoes() async throws {
        try await TestCertificate.withDirectory { directory in
            let certificate = directory.appendingPathComponent("server.crt").path
            let key = directory.appendingPathComponent("server.key").path
            let hba = directory.appendingPathComponent("pg_hba.conf").path
            let otherRoot = directory.appendingPathComponent("other-root.pem").path
            try TestCertificate.a.certificatePEM.write(toFile: certificate, atomically: true, encoding: .utf8)
            try TestCertificate.a.privateKeyPEM.write(toFile: key, atomically: true, encoding: .utf8)
            try TestCertificate.b.certificatePEM.write(toFile: otherRoot, atomically: true, encoding: .utf8)
            try "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 reject\n"
                .write(toFile: hba, atomically: true, encoding: .utf8)
            // PostgreSQL wants its key readable by its user only; as root the server runs as `postgres`.
            #expect(chmod(key, 0o600) == 0)
            if getuid() == 0, let user = getpwnam("postgres") {
                for path in [certificate, key, hba] { #expect(chown(path, user.pointee.pw_uid, user.pointee.pw_gid) == 0) }
            }
            var settings = LocalPostgresServer.fastUnsafeSettings
            settings["ssl"] = "on"
            settings["ssl_cert_file"] = certificate
            settings["ssl_key_file"] = key
            settings["hba_file"] = hba
            try await LocalPostgresServer.withServer(settings: settings) { server in
                /// Whether a store with these URL parameters can load (a refused connection fails within 2 s).
                func connects(_ parameters: String, within timeout: Duration = .seconds(10)) async throws -> Bool {
                    var configuration = try PostgresSessionStoreConfiguration(
                        url: "postgres://postgres@127.0.0.1:\(server.port)/postgres?\(parameters)")
                    configuration.tableName = "tls_sessions"
                    configuration.connectTimeout = timeout
                    configuration.operationTimeout = timeout
                    return try await withPostgresStore(configuration) { store in
                        do {
                            _ = try await store.load(id: "x")
                            return true
                        } catch let error as SessionStoreError where error.isUnavailable {
                            return false
                        }
                    }
                }
                let require = try await connects("sslmode=require")
                let prefer = try await connects("sslmode=prefer")
                let verifyFull = try await connects("sslmode=verify-full&sslrootcert=\(certificate)")
                let verifyCA = try await connects("sslmode=verify-ca&sslrootcert=\(certificate)")
                let anotherRoot = try await connects("sslmode=verify-full&sslrootcert=\(otherRoot)", within: .seconds(2))
                let systemRoots = try await connects("sslmode=verify-full", within: .seconds(2))
                let requireWithRoot = try await connects("sslmode=require&sslrootcert=\(otherRoot)", within: .seconds(2))
                let plain = try await connects("sslmode=disable", within: .seconds(2))
                #expect(require, "not checked, as psql does not")
                #expect(prefer && verifyFull && verifyCA)
                #expect(!anotherRoot, "signed by another root")
                #expect(!systemRoots, "no system root signed it")
                #expect(!requireWithRoot, "with a root file, require checks the chain (libpq)")
                #expect(!plain, "this server refuses plain connections")
            }
        }
    }
}
