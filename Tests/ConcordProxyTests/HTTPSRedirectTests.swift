import ConcordTLSTestSupport
import Foundation
import NIOCore
import Testing

@testable import ConcordProxy

/// `httpRedirect`: the plain-HTTP listener beside a TLS proxy answers 308 to the same URL over HTTPS.
@Suite(.serialized, .timeLimit(.minutes(3))) struct HTTPSRedirectTests {
    @Test func theLocationKeepsHostAndTargetAndNamesTheHTTPSPort() {
        #expect(HTTPSRedirectServer.location(host: "shop.example", target: "/cart?item=tea", httpsPort: 443) == "https://shop.example/cart?item=tea")
        #expect(HTTPSRedirectServer.location(host: "shop.example:80", target: "/", httpsPort: 8443) == "https://shop.example:8443/")
        #expect(HTTPSRedirectServer.location(host: "[::1]:8080", target: "/a", httpsPort: 443) == "https://[::1]/a")
        #expect(HTTPSRedirectServer.location(host: "10.0.0.1", target: "/a", httpsPort: 443) == "https://10.0.0.1/a")
        // Refused (400): no Host, an empty one, a user part, a path in it, bad characters, a bad port, an
        // absolute-form or asterisk target, a non-ASCII target.
        for host in [nil, "", " ", "user@shop.example", "shop.example/evil", "shop example", "shop.example:", "shop.example:8x",
                     "[::1", "[zz]:80", "shöp.example", String(repeating: "a", count: 300)] as [String?] {
            #expect(HTTPSRedirectServer.location(host: host, target: "/", httpsPort: 443) == nil, "\(host ?? "nil")")
        }
        #expect(HTTPSRedirectServer.location(host: "shop.example", target: "http://other/", httpsPort: 443) == nil)
        #expect(HTTPSRedirectServer.location(host: "shop.example", target: "*", httpsPort: 443) == nil)
        #expect(HTTPSRedirectServer.location(host: "shop.example", target: "/caf\u{e9}", httpsPort: 443) == nil)
    }

    @Test func plainHTTPIsRedirectedToTheTLSListenerAndTheConnectionCloses() async throws {
        try await TestCertificate.withDirectory { directory in
            try await ProxyHarness.withBackends(["a"]) { backends in
                var c = try ProxyHarness.configuration(backends, balance: .roundRobin)
                c.tls = try TestCertificate.a.install(in: directory)
                c.httpRedirect = HTTPRedirectConfiguration(listen: HostPort(host: "127.0.0.1", port: 0))
                // Short, to see a silent connection closed, but not so short that a loaded machine misses a request
                // (0.5 s did once under scripts/test-under-load).
                c.limits.headerReadTimeout = 2
                try await ProxyHarness.withProxy(c) { server, port in
                    let addresses = try #require(server.addresses)
                    let plainPort = try #require(addresses.httpRedirect?.port)
                    #expect(server.readyLine(addresses).hasSuffix("; HTTP on 127.0.0.1:\(plainPort) redirects to HTTPS"))
                    let get = try await RawClient.exchange(port: plainPort, ["GET /cart?item=tea HTTP/1.1\r\nHost: shop.example:80\r\n\r\n"])
                    #expect(get.status == 308)
                    #expect(get.header("location") == "https://shop.example:\(port)/cart?item=tea")
                    #expect(get.closedByPeer)
                    let post = try await RawClient.exchange(
                        port: plainPort, ["POST /login HTTP/1.1\r\nHost: shop.example\r\nContent-Length: 5\r\n\r\nx=1&y"])
                    #expect(post.status == 308, "308 keeps the method: the browser posts again, to HTTPS")
                    let noHost = try await RawClient.exchange(port: plainPort, ["GET / HTTP/1.0\r\n\r\n"])
                    #expect(noHost.status == 400)
                    let badHost = try await RawClient.exchange(port: plainPort, ["GET / HTTP/1.1\r\nHost: evil.example/x\r\n\r\n"])
                    #expect(badHost.status == 400)
                    #expect(backends[0].requests == 0, "nothing on the plain port reaches a backend")
                    // A connection that sends nothing is closed after the header read timeout.
                    let start = ContinuousClock.now
                    let silent = try await RawClient.exchange(port: plainPort, [], timeout: .seconds(10))
                    #expect(silent.closedByPeer)
                    #expect(ContinuousClock.now - start < .seconds(9))
                    #expect(server.metrics.exposition().contains("concord_proxy_https_redirects_total 2"))
                    // The HTTPS side serves as usual.
                    let https = try await RawClient.get(port: port, tls: try TestCertificate.a.clientContext())
                    #expect(https.status == 200)
                }
            }
        }
    }

    @Test func theRedirectNeedsTLSAndItsListenerNeedsARestart() throws {
        var c = ProxyConfiguration(backends: [HostPort(host: "127.0.0.1", port: 9001)])
        c.httpRedirect = HTTPRedirectConfiguration(listen: HostPort(host: "127.0.0.1", port: 8080))
        #expect(throws: ProxyError.invalidSetting("--http-redirect sends clients to HTTPS: it needs --mode http and TLS (--tls-certificate and --tls-key)")) {
            try c.validate()
        }
        c.tls = ProxyTLSConfiguration(certificateChain: "c.pem", privateKey: "k.pem")
        c.listen = HostPort(host: "127.0.0.1", port: 8443)
        try c.validate()
        c.httpRedirect?.httpsPort = 0
        #expect(throws: ProxyError.self) { try c.validate() }
        let yaml = try ProxyConfiguration.parse(yaml: """
            backends: ["127.0.0.1:9001"]
            tls: {certificateChain: c.pem, privateKey: k.pem}
            httpRedirect: {listen: "0.0.0.0:80", httpsPort: 443}
            """)
        #expect(yaml.httpRedirect == HTTPRedirectConfiguration(listen: HostPort(host: "0.0.0.0", port: 80), httpsPort: 443))
        var moved = yaml
        moved.httpRedirect?.listen = HostPort(host: "0.0.0.0", port: 8080)
        let plan = ProxyReload(current: yaml, new: moved)
        #expect(plan.needsRestart == [.httpRedirect])
        #expect(plan.configuration.httpRedirect == yaml.httpRedirect)
    }
}
