import ConcordTLSTestSupport
import Foundation
import NIOCore
import Testing

@testable import ConcordProxy

/// `backendTLS`: the proxy speaks TLS to backends that speak only TLS, and checks their certificates.
@Suite(.serialized, .timeLimit(.minutes(3))) struct BackendTLSTests {
    /// Two HTTPS-only test backends presenting certificate a, and the path of a's certificate (as a CA file).
    func withTLSBackends(_ body: ([TestBackend], String) async throws -> Void) async throws {
        try await TestCertificate.withDirectory { directory in
            let ca = try TestCertificate.a.install(in: directory).certificateChain
            let tls = try TestCertificate.a.serverContext()
            try await ProxyHarness.withServers(["t0", "t1"], start: { try await TestBackend.start(name: $0, tls: tls) }) { backends in
                try await body(backends, ca)
            }
        }
    }

    @Test func theProxySpeaksTLSToTheBackendsAndItsHealthChecksDoToo() async throws {
        try await withTLSBackends { backends, ca in
            var c = try ProxyHarness.configuration(backends, balance: .roundRobin)
            c.health.path = "/health"
            c.backendTLS = BackendTLSConfiguration(caFile: ca)
            try await ProxyHarness.withProxy(c) { _, port in
                var seen: [String] = []
                for _ in 0..<6 {
                    let response = try await RawClient.get(port: port)
                    #expect(response.status == 200, "\(response.text)")
                    seen.append(response.body)
                }
                #expect(Set(seen) == ["t0", "t1"], "both HTTPS backends served")
                // The start-up probe round reached each backend over TLS (they speak nothing else).
                #expect(backends.allSatisfy { $0.healthChecks >= 1 })
            }
        }
    }

    @Test func aBackendWhoseCertificateIsNotTrustedGetsNoRequest() async throws {
        try await TestCertificate.withDirectory { directory in
            // Trust b only; the backends present a.
            let otherCA = try TestCertificate.b.install(in: directory, as: "b-").certificateChain
            try await withTLSBackends { backends, _ in
                var c = try ProxyHarness.configuration(backends, balance: .roundRobin)
                c.backendTLS = BackendTLSConfiguration(caFile: otherCA)
                try await ProxyHarness.withProxy(c) { _, port in
                    let response = try await RawClient.get(port: port)
                    #expect(response.status == 502, "\(response.text)")
                    #expect(backends.allSatisfy { $0.requests == 0 })
                }
                // Without verification the same backends are reached (encrypted, not authenticated).
                c.backendTLS = BackendTLSConfiguration(verify: false)
                try await ProxyHarness.withProxy(c) { _, port in
                    let unverified = try await RawClient.get(port: port)
                    #expect(unverified.status == 200)
                }
            }
        }
    }

    @Test func tcpModeOpensTLSToTheBackend() async throws {
        try await withTLSBackends { backends, ca in
            var c = try ProxyHarness.configuration(backends, balance: .roundRobin, key: "ip", mode: .tcp)
            c.backendTLS = BackendTLSConfiguration(caFile: ca)
            try await ProxyHarness.withProxy(c) { _, port in
                // Plain HTTP from the client; the proxy's hop to the HTTPS-only backend is TLS. The client's half-close
                // goes on as the backend connection's close_notify, and the backend then closes.
                let response = try await RawClient.exchange(port: port, ["GET / HTTP/1.1\r\nHost: t\r\n\r\n"], halfClose: true)
                #expect(response.status == 200, "\(response.text)")
                #expect(["t0", "t1"].contains(response.body))
            }
        }
    }

    @Test func aBackendThatAsksForAClientCertificateGetsTheProxys() async throws {
        try await TestCertificate.withDirectory { directory in
            let ca = try TestCertificate.a.install(in: directory).certificateChain
            let clientB = try TestCertificate.b.install(in: directory, as: "b-")
            let clientA = try TestCertificate.a.install(in: directory, as: "a-")
            // The backend presents a and accepts only client certificates issued by b.
            let tls = try TestCertificate.a.serverContext(clientCertificatesFrom: .b)
            try await ProxyHarness.withServers(["m0"], start: { try await TestBackend.start(name: $0, tls: tls) }) { backends in
                var c = try ProxyHarness.configuration(backends, balance: .roundRobin)
                for (client, expected) in [(clientB, 200), (nil, 502), (clientA, 502)] as [(ProxyTLSConfiguration?, Int)] {
                    c.backendTLS = BackendTLSConfiguration(caFile: ca, certificateChain: client?.certificateChain, privateKey: client?.privateKey)
                    try await ProxyHarness.withProxy(c) { _, port in
                        let response = try await RawClient.get(port: port)
                        #expect(response.status == expected, "client certificate \(client?.certificateChain ?? "none"): \(response.text)")
                    }
                }
                #expect(backends[0].requests == 1, "only the proxy with b's certificate got through")
            }
        }
        var c = ProxyConfiguration(backends: [HostPort(host: "127.0.0.1", port: 1)])
        c.backendTLS = BackendTLSConfiguration(certificateChain: "/x/cert.pem")
        #expect(throws: ProxyError.invalidSetting("backendTLS: certificateChain and privateKey go together (the client certificate and its key)")) {
            try ProxyServer(configuration: c, logger: .init(label: "backend-tls-test"))
        }
    }

    @Test func aMissingCAFileFailsAtStartAndYAMLNamesTheSettings() throws {
        var c = ProxyConfiguration(backends: [HostPort(host: "127.0.0.1", port: 1)])
        c.backendTLS = BackendTLSConfiguration(caFile: "/nonexistent/ca.pem")
        #expect(throws: ProxyError.invalidSetting("backendTLS caFile /nonexistent/ca.pem: no such file")) {
            try ProxyServer(configuration: c, logger: .init(label: "backend-tls-test"))
        }
        let yaml = try ProxyConfiguration.parse(yaml: """
            backends: ["127.0.0.1:9001"]
            backendTLS: {caFile: /etc/concord/backends-ca.pem, serverName: app.internal}
            """)
        #expect(yaml.backendTLS == BackendTLSConfiguration(caFile: "/etc/concord/backends-ca.pem", serverName: "app.internal", verify: true))
        let empty = try ProxyConfiguration.parse(yaml: "backendTLS: {}")
        #expect(empty.backendTLS == BackendTLSConfiguration())
    }
}
