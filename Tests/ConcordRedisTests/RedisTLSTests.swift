import ConcordRedis
import ConcordSessions
import ConcordTLSTestSupport
import Foundation
import Testing

/// `rediss://` against a real `redis-server --tls-port` presenting test certificate a (names `localhost` and
/// `127.0.0.1`), listening on 127.0.0.1 and 127.0.0.2 (an address the certificate does not name). The server also
/// listens in plain TCP, which the fixture's readiness probe uses.
@Suite(.timeLimit(.minutes(3))) struct RedisTLSTests {
    /// Certificate files in `directory`: a (the server's; also the CA clients present certificates from) and b.
    private struct Files {
        let a: (chain: String, key: String)
        let b: (chain: String, key: String)
    }

    /// Starts the server with TLS on another free port and runs `body` with that port; `clientCertificates`:
    /// the server requires a client certificate signed by a (`tls-auth-clients yes`).
    private func withTLSServer(
        clientCertificates: Bool = false, _ body: (_ tlsPort: Int, _ files: Files) async throws -> Void
    ) async throws {
        try await TestCertificate.withDirectory { directory in
            let files = Files(a: try TestCertificate.a.write(to: directory, as: "a"), b: try TestCertificate.b.write(to: directory, as: "b"))
            let tlsPort = try LoopbackPort.free()
            let arguments = [
                "--tls-port", String(tlsPort), "--tls-cert-file", files.a.chain, "--tls-key-file", files.a.key,
                "--tls-ca-cert-file", files.a.chain, "--tls-auth-clients", clientCertificates ? "yes" : "no",
                "--bind", "127.0.0.1", "127.0.0.2",
            ]
            try await RedisServerFixture.withServer(arguments: arguments) { _ in try await body(tlsPort, files) }
        }
    }

    private func client(_ url: String) throws -> RedisClient {
        try RedisClient(configuration: .testing(urls: [url]))
    }

    @Test func aSessionStoreWorksOverTLSCheckingTheServersCertificate() async throws {
        try await withTLSServer { port, files in
            // By IP address (checked against the certificate's IP entry) and by name (SNI `localhost`, at an
            // address the certificate does not name).
            for url in ["rediss://127.0.0.1:\(port)?caFile=\(files.a.chain)",
                "rediss://127.0.0.2:\(port)?caFile=\(files.a.chain)&serverName=localhost"]
            {
                let store = try RedisSessionStore(configuration: .testing(urls: [url]))
                defer { store.shutdown() }
                let version = try await store.save(StoredSession(id: "tls", payload: Array("cart".utf8)), ttl: .seconds(60), expectedVersion: nil)
                let loaded = try #require(try await store.load(id: "tls"))
                #expect(loaded.payload == Array("cart".utf8))
                #expect(loaded.version == version)
                try await store.delete(id: "tls")
            }
        }
    }

    @Test func aCertificateFromAnotherCAIsRefusedAtConnect() async throws {
        try await withTLSServer { port, files in
            for url in ["rediss://127.0.0.1:\(port)?caFile=\(files.b.chain)",
                // a's certificate is trusted, but names neither this address nor this server name.
                "rediss://127.0.0.2:\(port)?caFile=\(files.a.chain)",
                "rediss://127.0.0.2:\(port)?caFile=\(files.a.chain)&serverName=redis.example.com"]
            {
                let client = try client(url)
                defer { client.shutdown() }
                let started = ContinuousClock.now
                let error = try #require(await sendError(client, .ping()), "\(url)")
                #expect(!error.isServerError && !error.isTimeout, "\(error)")
                #expect(error.description.contains(":\(port)"), "\(error)")
                #expect(error.description.contains("TLS"), "\(error)")
                #expect(ContinuousClock.now - started < .seconds(10), "not the 15-s command timeout")
            }
        }
    }

    @Test func verifyFalseAcceptsAnyCertificate() async throws {
        try await withTLSServer { port, _ in
            let client = try client("rediss://127.0.0.1:\(port)?verify=false")
            defer { client.shutdown() }
            #expect(try await client.send(.ping()) == .simpleString("PONG"))
        }
    }

    @Test func aServerThatAsksForAClientCertificateGetsOne() async throws {
        try await withTLSServer(clientCertificates: true) { port, files in
            // One connection, so the second command meets the first one's failed connect (backing off): the
            // refusal, which TLS 1.3 sends after the client's side of the handshake, failed the connect.
            var configuration = try RedisClientConfiguration.testing(urls: ["rediss://127.0.0.1:\(port)?caFile=\(files.a.chain)"])
            configuration.maximumConnectionsPerNode = 1
            let without = try RedisClient(configuration: configuration)
            defer { without.shutdown() }
            let refused = await sendError(without, .ping())
            #expect(refused?.description.contains("CERTIFICATE_REQUIRED") == true, "\(String(describing: refused))")
            #expect(await sendError(without, .ping())?.isBackingOff == true)

            let with = try client(
                "rediss://127.0.0.1:\(port)?caFile=\(files.a.chain)&certificateChain=\(files.a.chain)&privateKey=\(files.a.key)")
            defer { with.shutdown() }
            #expect(try await with.send(.set("k", "v")) == .simpleString("OK"))
            #expect(try await with.send(.get("k")).string == "v")
        }
    }

    @Test func plainRedisToATLSPortFailsWithATypedError() async throws {
        try await withTLSServer { port, _ in
            var configuration = try RedisClientConfiguration(urls: ["redis://127.0.0.1:\(port)"])
            configuration.commandTimeout = .milliseconds(500)
            let client = try RedisClient(configuration: configuration)
            defer { client.shutdown() }
            // The server waits for a TLS ClientHello and closes (or the command times out): an error, not a hang.
            await #expect(throws: RedisClientError.self) { try await client.send(.ping()) }
        }
    }

    @Test func unusableTLSSettingsFailAtInitNamingTheFile() throws {
        func message(_ url: String) -> String {
            do {
                _ = try RedisClient(configuration: RedisClientConfiguration(urls: [url]))
                return "no error"
            } catch {
                return error.isInvalidConfiguration ? error.description : "not invalidConfiguration: \(error)"
            }
        }
        #expect(message("rediss://h?caFile=/nonexistent/ca.pem").contains("caFile /nonexistent/ca.pem: no such file"))
        #expect(message("rediss://h?certificateChain=/etc/hostname").contains("certificateChain and privateKey go together"))
        #expect(message("rediss://h?caFile=/etc/hostname").contains("caFile /etc/hostname: not a PEM certificate file"))
        #expect(message("rediss://h?verify=no").contains("verify=no: expected true or false"))
        #expect(message("redis://h?caFile=/x").contains("need rediss://"))
        #expect(message("rediss://h?cafile=/x").contains("unknown parameter 'cafile'"))
        #expect(message("rediss://h?verify=false&verify=true").contains("given twice"))
        #expect(
            (try? RedisClient(configuration: RedisClientConfiguration(urls: ["rediss://a:1", "redis://b:2"]))) == nil,
            "cluster seeds that mix TLS and plain TCP")
    }
}
