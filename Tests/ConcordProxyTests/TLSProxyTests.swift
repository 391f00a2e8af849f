import ConcordTLSTestSupport
import ConcordSessionsTesting
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import Testing

@testable import ConcordProxy

/// TLS on the client listener: real handshakes on loopback with the test certificates, plain HTTP / TCP behind.
@Suite(.serialized, .timeLimit(.minutes(3))) struct TLSProxyTests {
    static let ok = TestScriptedBackend.Reply(bytes: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    /// Why a proxy with `tls` cannot be made (its error's text), or "started".
    static func startError(_ tls: ProxyTLSConfiguration) -> String {
        var c = ProxyConfiguration(backends: [HostPort(host: "127.0.0.1", port: 1)])
        c.tls = tls
        do {
            _ = try ProxyServer(configuration: c, logger: .init(label: "tls-test"))
            return "started"
        } catch { return error.description }
    }

    func metric(_ server: ProxyServer, _ name: String) -> String? {
        server.metrics.exposition().split(separator: "\n").first { $0.hasPrefix(name + " ") }.map(String.init)
    }

    /// One scripted backend that records the request heads it gets, behind a TLS proxy with certificate `a`; with
    /// `clientCertificates`, b is the client CA (mutual TLS) in that mode; `configure` sets anything else; `reply`
    /// answers each request head (default: 200 `ok`).
    func withTLSProxy(balance: BalanceStrategy = .roundRobin, limits: ProxyLimits = ProxyLimits(),
                      clientCertificates: ProxyTLSConfiguration.ClientCertificateMode? = nil,
                      configure: (inout ProxyConfiguration) -> Void = { _ in },
                      reply: @escaping @Sendable (String) -> TestScriptedBackend.Reply = { _ in Self.ok },
                      _ body: (ProxyServer, Int, NIOLockedValueBox<[String]>) async throws -> Void) async throws {
        let heads = NIOLockedValueBox<[String]>([])
        try await TestCertificate.withDirectory { directory in
            try await ProxyHarness.withServers(["s"], start: { _ in
                try await TestScriptedBackend.start { head, _ in
                    heads.withLockedValue { $0.append(head) }
                    return reply(head)
                }
            }) { backends in
                var c = ProxyConfiguration(backends: [try HostPort(parsing: backends[0].address)], balance: balance, limits: limits)
                c.health = ProxyHarness.quietHealth
                c.tls = try TestCertificate.a.install(in: directory)
                if let clientCertificates {
                    c.tls?.clientCA = try TestCertificate.b.install(in: directory, as: "b-").certificateChain
                    c.tls?.clientCertificate = clientCertificates
                }
                configure(&c)
                try await ProxyHarness.withProxy(c) { server, port in try await body(server, port, heads) }
            }
        }
    }

    @Test func terminatesTLSAndTellsTheBackendTheClientCameOverHTTPS() async throws {
        try await withTLSProxy { server, port, heads in
            let client = try TestCertificate.a.clientContext()
            for _ in 0..<3 {
                // Without client certificates, a client's own X-Forwarded-Client-Cert never reaches the backend.
                let response = try await RawClient.get(
                    port: port, path: "/cart", headers: ["X-Forwarded-Client-Cert": "Hash=forged"], tls: client)
                #expect(response.status == 200, "\(response.text) \(response.error ?? "")")
                #expect(response.body == "ok")
            }
            // Each connection closes at once after its response (close_notify, then the socket), not after a wait
            // for the client's close_notify (SwiftNIO SSL's default: up to 5 s).
            let closing = ContinuousClock.now
            try await waitFor { server.runtime.openConnections == 0 }
            #expect(ContinuousClock.now - closing < .milliseconds(900))
            let seen = heads.withLockedValue { $0 }
            #expect(seen.count == 3)
            // The backend gets plain HTTP, with the scheme the client used.
            let head = seen.first?.lowercased() ?? ""
            #expect(head.hasPrefix("get /cart http/1.1"))
            #expect(head.contains("x-forwarded-proto: https\r\n"))
            #expect(head.hasSuffix("\r\nforwarded: for=127.0.0.1;proto=https"), "the fields the proxy adds come last")
            #expect(!head.contains("x-forwarded-client-cert"), "\(head)")
            #expect(metric(server, "concord_proxy_tls_handshakes_total") == "concord_proxy_tls_handshakes_total 3")
            #expect(metric(server, "concord_proxy_tls_handshake_failures_total") == "concord_proxy_tls_handshake_failures_total 0")
        }
    }

    @Test func theStickyCookieIsSecureOverTLS() async throws {
        try await withTLSProxy(balance: .stickyCookie) { _, port, _ in
            let response = try await RawClient.get(port: port, tls: try TestCertificate.a.clientContext())
            #expect(response.status == 200)
            let cookie = response.header("set-cookie") ?? ""
            #expect(cookie.hasPrefix("CONCORDSRV="))
            #expect(cookie.hasSuffix("; Secure"), "\(cookie)")
        }
    }

    @Test func aPlainHTTPClientOrAnUntrustingOneFailsTheHandshakeIsCountedAndOthersAreServed() async throws {
        try await withTLSProxy { server, port, heads in
            // Plain HTTP on the TLS port: not a TLS record, so the handshake fails and the connection closes
            // without an HTTP answer and without reaching a backend.
            let plain = try await RawClient.get(port: port)
            #expect(plain.status == nil)
            #expect(plain.closedByPeer)
            // A client that trusts only certificate b rejects a's: its handshake fails too.
            let untrusting = try await RawClient.get(port: port, tls: try TestCertificate.b.clientContext())
            #expect(untrusting.status == nil)
            #expect(untrusting.error != nil)
            let good = try await RawClient.get(port: port, tls: try TestCertificate.a.clientContext())
            #expect(good.status == 200)
            #expect(heads.withLockedValue { $0.count } == 1)
            // The proxy's side of the untrusting client's handshake ends when that client aborts it.
            try await waitFor { metric(server, "concord_proxy_tls_handshake_failures_total") == "concord_proxy_tls_handshake_failures_total 2" }
            #expect(metric(server, "concord_proxy_tls_handshake_failures_total") == "concord_proxy_tls_handshake_failures_total 2")
            #expect(metric(server, "concord_proxy_tls_handshakes_total") == "concord_proxy_tls_handshakes_total 1")
        }
    }

    @Test func aClientThatNeverFinishesItsHandshakeIsClosedByTheHeaderTimeout() async throws {
        var limits = ProxyLimits()
        limits.headerReadTimeout = 0.5
        try await withTLSProxy(limits: limits) { server, port, _ in
            let start = ContinuousClock.now
            // Connects and sends nothing: no ClientHello, no request (slowloris before TLS). The keep-alive
            // timeout (60 s) would otherwise be the only bound: the proxy handler sees no byte of a handshake.
            let silent = try await RawClient.exchange(port: port, [], timeout: .seconds(10))
            #expect(silent.closedByPeer)
            #expect(ContinuousClock.now - start < .seconds(5))
            #expect(metric(server, "concord_proxy_tls_handshake_failures_total") == "concord_proxy_tls_handshake_failures_total 1")
        }
    }

    @Test func tcpModeTerminatesTLSAndPassesPlainBytes() async throws {
        try await TestCertificate.withDirectory { directory in
            try await ProxyHarness.withServers(["e0"], start: { try await TestEchoBackend.start(name: $0) }) { backends in
                var c = ProxyConfiguration(backends: [try HostPort(parsing: backends[0].address)], mode: .tcp, balance: .roundRobin)
                c.health = ProxyHarness.quietHealth
                c.tls = try TestCertificate.a.install(in: directory)
                try await ProxyHarness.withProxy(c) { server, port in
                    let response = try await RawClient.exchange(port: port, ["hello ", "world"], halfClose: true,
                                                                tls: try TestCertificate.a.clientContext())
                    // The echo backend saw plaintext and answered the (TLS close_notify → TCP) half-close.
                    #expect(response.text == "e0:hello world|bye", "\(response.text) \(response.error ?? "")")
                    // The pair ends at once, not after a wait for the client's close_notify.
                    let closing = ContinuousClock.now
                    try await waitFor { server.runtime.openConnections == 0 }
                    #expect(ContinuousClock.now - closing < .milliseconds(900))
                }
            }
        }
    }

    @Test func aReloadReadsARenewedCertificateForNewConnections() async throws {
        try await TestCertificate.withDirectory { directory in
            try await ProxyHarness.withServers(["s"], start: { _ in try await TestScriptedBackend.start { _, _ in Self.ok } }) { backends in
                var c = ProxyConfiguration(backends: [try HostPort(parsing: backends[0].address)], balance: .roundRobin)
                c.health = ProxyHarness.quietHealth
                c.tls = try TestCertificate.a.install(in: directory)
                let configuration = c
                let capture = LogCapture()
                try await ProxyHarness.withProxy(c, reload: { configuration }, logger: Logger(label: "tls-test") { _ in capture }) { server, port in
                    let trustsB = try TestCertificate.b.clientContext()
                    #expect(try await RawClient.get(port: port, tls: trustsB).status == nil)
                    // Nothing renewed: the reload keeps the TLS context, whose session-ticket keys resumed sessions
                    // depend on (a new context made every returning client do a full handshake).
                    let before = try #require(server.runtime.tlsContext)
                    try server.reload()
                    #expect(server.runtime.tlsContext === before)
                    #expect(capture.messages.contains(
                        "reload: TLS certificates read again from \(configuration.tls!.certificateChain): unchanged, so clients keep resuming their TLS sessions"))
                    // Renewal: new files at the same paths, then SIGHUP's reload (same configuration).
                    try TestCertificate.b.install(in: directory)
                    let plan = try server.reload()
                    #expect(plan?.applied.isEmpty == true, "the paths did not change; the files are read again anyway")
                    #expect(server.runtime.tlsContext !== before)
                    #expect(capture.messages.contains(
                        "reload: TLS certificates read again from \(configuration.tls!.certificateChain): new ones in force for new connections"))
                    #expect(try await RawClient.get(port: port, tls: trustsB).status == 200)
                    #expect(try await RawClient.get(port: port, tls: try TestCertificate.a.clientContext()).status == nil)
                    // A renewal that went wrong (a key that does not fit) keeps the certificate in force.
                    try TestCertificate.a.privateKeyPEM.write(to: directory.appendingPathComponent("key.pem"), atomically: true, encoding: .utf8)
                    #expect(throws: ProxyError.self) { try server.reload() }
                    #expect(try await RawClient.get(port: port, tls: trustsB).status == 200)
                }
            }
        }
    }

    @Test func badCertificateFilesFailAtStartWithAnErrorNamingTheFile() async throws {
        try await TestCertificate.withDirectory { directory in
            let installed = try TestCertificate.a.install(in: directory)
            let startError = Self.startError
            let missing = directory.appendingPathComponent("nope.pem").path
            #expect(startError(ProxyTLSConfiguration(certificateChain: missing, privateKey: installed.privateKey))
                    == "tls certificateChain \(missing): no such file")
            // The key given as the certificate: not a certificate.
            let notACertificate = startError(ProxyTLSConfiguration(certificateChain: installed.privateKey, privateKey: installed.privateKey))
            #expect(notACertificate.hasPrefix("tls certificateChain \(installed.privateKey): "), "\(notACertificate)")
            let notAKey = startError(ProxyTLSConfiguration(certificateChain: installed.certificateChain, privateKey: installed.certificateChain))
            #expect(notAKey.hasPrefix("tls privateKey \(installed.certificateChain): not an unencrypted PEM private key"), "\(notAKey)")
            // b's key with a's certificate.
            let otherKey = directory.appendingPathComponent("other-key.pem")
            try TestCertificate.b.privateKeyPEM.write(to: otherKey, atomically: true, encoding: .utf8)
            let mismatch = startError(ProxyTLSConfiguration(certificateChain: installed.certificateChain, privateKey: otherKey.path))
            #expect(mismatch.hasPrefix("tls: the private key \(otherKey.path) does not fit the certificate"), "\(mismatch)")
            #expect(startError(installed) == "started")
        }
    }

    @Test func sniPicksTheCertificateForTheNameTheClientAsksFor() async throws {
        try await TestCertificate.withDirectory { directory in
            try await ProxyHarness.withServers(["s"], start: { _ in try await TestScriptedBackend.start { _, _ in Self.ok } }) { backends in
                var c = ProxyConfiguration(backends: [try HostPort(parsing: backends[0].address)], balance: .roundRobin)
                c.health = ProxyHarness.quietHealth
                var tls = try TestCertificate.a.install(in: directory)
                let b = try TestCertificate.b.install(in: directory, as: "b-")
                tls.sni = [.init(serverNames: ["shop.example", "*.Shop.Example"], certificateChain: b.certificateChain, privateKey: b.privateKey)]
                c.tls = tls
                try await ProxyHarness.withProxy(c) { _, port in
                    let trustsA = try TestCertificate.a.clientContext(anyName: true)
                    let trustsB = try TestCertificate.b.clientContext(anyName: true)
                    func status(_ name: String, _ client: NIOSSLContext) async throws -> Int? {
                        try await RawClient.exchange(port: port, ["GET / HTTP/1.1\r\nHost: \(name)\r\nConnection: close\r\n\r\n"],
                                                     tls: client, serverName: name).status
                    }
                    // Listed names (any case) and one-label wildcard matches get b; everything else the default a.
                    for name in ["shop.example", "SHOP.example", "api.shop.example"] {
                        #expect(try await status(name, trustsB) == 200, "\(name) should get b")
                        #expect(try await status(name, trustsA) == nil, "\(name) should not get a")
                    }
                    for name in ["localhost", "other.example", "a.b.shop.example", "xshop.example"] {
                        #expect(try await status(name, trustsA) == 200, "\(name) should get the default a")
                        #expect(try await status(name, trustsB) == nil, "\(name) should not get b")
                    }
                }
            }
        }
    }

    @Test func sniEntriesAreCheckedLikeTheDefaultCertificate() async throws {
        try await TestCertificate.withDirectory { directory in
            var tls = try TestCertificate.a.install(in: directory)
            func problem(_ entry: ProxyTLSConfiguration.SNICertificate) -> String {
                tls.sni = [entry]
                return Self.startError(tls)
            }
            let missing = directory.appendingPathComponent("missing.pem").path
            #expect(problem(.init(serverNames: ["shop.example"], certificateChain: missing, privateKey: tls.privateKey))
                    == "tls sni[0] certificateChain \(missing): no such file")
            let otherKey = directory.appendingPathComponent("other-key.pem")
            try TestCertificate.b.privateKeyPEM.write(to: otherKey, atomically: true, encoding: .utf8)
            #expect(problem(.init(serverNames: ["shop.example"], certificateChain: tls.certificateChain, privateKey: otherKey.path))
                        .hasPrefix("tls sni[0]: the private key \(otherKey.path) does not fit the certificate"))
            for bad in ["shop example", "*.", "*.com.", "-shop.example", "shop..example", "*shop.example", "a.*.example", "*.example"] {
                #expect(problem(.init(serverNames: [bad], certificateChain: tls.certificateChain, privateKey: tls.privateKey))
                        == "tls sni[0] serverNames: '\(bad)' is not a host name (or *. and a domain)", "\(bad)")
            }
            #expect(problem(.init(serverNames: [], certificateChain: tls.certificateChain, privateKey: tls.privateKey)) == "tls sni[0]: serverNames is empty")
            #expect(problem(.init(serverNames: ["shop.example", "Shop.example"], certificateChain: tls.certificateChain, privateKey: tls.privateKey))
                    == "tls sni: Shop.example is listed twice")
            #expect(problem(.init(serverNames: ["shop.example", "*.shop.example"], certificateChain: tls.certificateChain, privateKey: tls.privateKey)) == "started")
        }
    }

    @Test func eachServedCertificatesExpiryIsExportedAndANearOneIsLogged() async throws {
        try await withTLSProxy { server, _, _ in
            let file = try #require(server.configuration.tls?.certificateChain)
            let prefix = "concord_proxy_tls_certificate_not_after_seconds{certificate=\"\(file)\"} "
            let line = server.metrics.exposition().split(separator: "\n").first { $0.hasPrefix(prefix) }
            // Test certificate a: notAfter 2126-11-08 00:22:20 UTC.
            #expect(line.flatMap { Double($0.dropFirst(prefix.count)) } == 4_949_770_940, "\(line ?? "no line")")
        }
        let expiry = CertificateExpiry(file: "/etc/concord/fullchain.pem", notValidAfter: 1_800_000_000)  // 2027-01-15 08:00:00 UTC
        #expect(expiry.problem(now: 1_800_000_000 - 15 * 86_400) == nil)
        let soon = try #require(expiry.problem(now: 1_800_000_000 - 3 * 86_400 - 60))
        #expect(soon.level == .warning)
        #expect(soon.message == "TLS certificate /etc/concord/fullchain.pem expires on 2027-01-15T08:00:00Z, in 3 days; renew it and send SIGHUP")
        let expired = try #require(expiry.problem(now: 1_800_000_001))
        #expect(expired.level == .error)
        #expect(expired.message.hasPrefix("TLS certificate /etc/concord/fullchain.pem expired on 2027-01-15T08:00:00Z"))
    }

    /// Mutual TLS: only certificates the CA signed get in, and the backend learns which one in
    /// `X-Forwarded-Client-Cert` (Envoy's format) — one a client sends itself is replaced.
    @Test func withAClientCAOnlyClientsWithACertificateItSignedAreServed() async throws {
        // b's fingerprint as `openssl x509 -outform der | sha256sum` gives it; its subject and DNS name.
        let identity = "x-forwarded-client-cert: hash=21467810403afee115f98cf7c02ad3e929f8303828be10ca06c2eee6c94ce55e;"
            + "subject=\"cn=concord-test-b\";dns=localhost"
        try await withTLSProxy(clientCertificates: .required) { server, port, heads in
            let withB = try await RawClient.get(
                port: port, headers: ["X-Forwarded-Client-Cert": "Hash=forged;Subject=\"CN=admin\""],
                tls: try TestCertificate.a.clientContext(presenting: .b))
            #expect(withB.status == 200, "\(withB.text) \(withB.error ?? "")")
            let head = heads.withLockedValue { $0.last }?.lowercased() ?? ""
            #expect(head.components(separatedBy: "\r\n").contains(identity), "\(head)")
            #expect(!head.contains("forged") && !head.contains("admin"), "\(head)")
            let without = try await RawClient.get(port: port, tls: try TestCertificate.a.clientContext())
            #expect(without.status == nil)
            let withA = try await RawClient.get(port: port, tls: try TestCertificate.a.clientContext(presenting: .a))
            #expect(withA.status == nil)
            try await waitFor { metric(server, "concord_proxy_tls_handshake_failures_total") == "concord_proxy_tls_handshake_failures_total 2" }
            #expect(metric(server, "concord_proxy_tls_handshake_failures_total") == "concord_proxy_tls_handshake_failures_total 2")
        }
        // Optional client certificates: a client without one is served with no identity; one it shows is checked.
        try await withTLSProxy(clientCertificates: .optional) { _, port, heads in
            let without = try await RawClient.get(port: port, tls: try TestCertificate.a.clientContext())
            #expect(without.status == 200, "\(without.text) \(without.error ?? "")")
            #expect(heads.withLockedValue { $0.last }?.lowercased().contains("x-forwarded-client-cert") == false)
            let withB = try await RawClient.get(port: port, tls: try TestCertificate.a.clientContext(presenting: .b))
            #expect(withB.status == 200, "\(withB.text) \(withB.error ?? "")")
            #expect(heads.withLockedValue { $0.last }?.lowercased().components(separatedBy: "\r\n").contains(identity) == true)
            let withA = try await RawClient.get(port: port, tls: try TestCertificate.a.clientContext(presenting: .a))
            #expect(withA.status == nil, "a certificate the CA did not sign is refused even when optional")
            #expect(heads.withLockedValue { $0.count } == 2)
        }
        try await TestCertificate.withDirectory { directory in
            var missing = try TestCertificate.a.install(in: directory)
            missing.clientCA = directory.appendingPathComponent("none.pem").path
            #expect(Self.startError(missing) == "tls clientCA \(missing.clientCA!): no such file")
        }
    }

    @Test func yamlNamesTheFilesAndTheMinimumVersion() throws {
        let c = try ProxyConfiguration.parse(yaml: """
            backends: ["127.0.0.1:9001"]
            tls:
              certificateChain: /etc/concord/cert.pem
              privateKey: /etc/concord/key.pem
              minimumVersion: "1.3"
            """)
        #expect(c.tls == ProxyTLSConfiguration(certificateChain: "/etc/concord/cert.pem", privateKey: "/etc/concord/key.pem", minimumVersion: .tls13))
        #expect(c.summary.hasPrefix("mode http over TLS, "))
        let defaults = try ProxyConfiguration.parse(yaml: "tls: {certificateChain: c.pem, privateKey: k.pem}")
        #expect(defaults.tls?.minimumVersion == .tls12)
        #expect(defaults.tls?.sni == [])
        let sni = try ProxyConfiguration.parse(yaml: """
            tls:
              certificateChain: c.pem
              privateKey: k.pem
              sni:
                - serverNames: [shop.example, "*.shop.example"]
                  certificateChain: shop.pem
                  privateKey: shop-key.pem
            """)
        #expect(sni.tls?.sni == [.init(serverNames: ["shop.example", "*.shop.example"], certificateChain: "shop.pem", privateKey: "shop-key.pem")])
        #expect(defaults.tls?.clientCertificate == .required)
        let optional = try ProxyConfiguration.parse(yaml: "tls: {certificateChain: c.pem, privateKey: k.pem, clientCA: ca.pem, clientCertificate: optional}")
        #expect(optional.tls?.clientCertificate == .optional)
        #expect(throws: ProxyError.self) {
            try ProxyConfiguration.parse(yaml: "tls: {certificateChain: c.pem, privateKey: k.pem, clientCertificate: optional}").validate()
        }
        #expect(throws: ProxyError.self) { try ProxyConfiguration.parse(yaml: "tls: {certificateChain: c.pem}") }
        #expect(throws: ProxyError.self) { try ProxyConfiguration.parse(yaml: "tls: {certificateChain: c.pem, privateKey: k.pem, minimumVersion: '1.0'}") }
    }

    /// Polls `condition` every 20 ms for at most 5 s.
    func waitFor(_ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(5)
        while !condition() && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
    }
}
