import NIOConcurrencyHelpers
import ConcordTLSTestSupport
import NIOCore
import Testing

@testable import ConcordProxy

/// `acceptProxyProtocol`: behind a load balancer that sends the PROXY protocol, the client is the address its
/// header names — for X-Forwarded-For, `ip` keys and the L4 header towards backends — and a connection without a
/// valid header never reaches a backend.
@Suite(.serialized, .timeLimit(.minutes(3))) struct ProxyProtocolAcceptTests {
    static let ok = TestScriptedBackend.Reply(bytes: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    /// One scripted backend behind a proxy that accepts the PROXY protocol; `heads` collects what the backend got.
    /// `headerReadTimeout`: long by default, so a loaded machine that oversleeps a pause between two pieces of a
    /// header does not make the proxy give up on it (a 2-s bound did once in the full suite).
    private func withProxy(
        headerReadTimeout: Double = 15,
        _ body: (_ port: Int, _ heads: NIOLockedValueBox<[String]>, _ server: ProxyServer) async throws -> Void
    ) async throws {
        let heads = NIOLockedValueBox<[String]>([])
        let backend = try await TestScriptedBackend.start { head, _ in
            heads.withLockedValue { $0.append(head) }
            return Self.ok
        }
        do {
            var config = ProxyConfiguration(backends: [try HostPort(parsing: backend.address)], balance: .hash, key: KeyChain([.ip]))
            config.health = ProxyHarness.quietHealth
            config.acceptProxyProtocol = true
            config.limits.headerReadTimeout = headerReadTimeout
            try await ProxyHarness.withProxy(config) { server, port in try await body(port, heads, server) }
        } catch {
            await backend.stop()
            throw error
        }
        await backend.stop()
    }

    @Test func theHeadersSourceIsTheClient() async throws {
        try await withProxy { port, heads, _ in
            // v1, arriving in two pieces, with the request right behind it.
            let v1 = try await RawClient.exchange(
                port: port, ["PROX", "Y TCP4 203.0.113.7 10.0.0.1 5555 80\r\nGET /a HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"],
                pause: .milliseconds(50))
            #expect(v1.text.hasPrefix("HTTP/1.1 200"), "\(v1.text.debugDescription)")
            // v2 (binary), IPv6.
            var header = ByteBuffer()
            ProxyProtocolHeader.encode(
                .v2, source: try SocketAddress(ipAddress: "2001:0:1234::7", port: 4660),
                destination: try SocketAddress(ipAddress: "2001:0:1234::1", port: 80), into: &header)
            let v2 = try await RawClient.exchange(
                port: port, [String(decoding: header.readableBytesView, as: UTF8.self) + "GET /b HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"])
            #expect(v2.text.hasPrefix("HTTP/1.1 200"), "\(v2.text.debugDescription)")
            // v2 LOCAL (the balancer's own health check): the connection's address applies.
            var local = ByteBuffer()
            ProxyProtocolHeader.encode(.v2, source: nil, destination: nil, into: &local)
            let check = try await RawClient.exchange(
                port: port, [String(decoding: local.readableBytesView, as: UTF8.self) + "GET /c HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"])
            #expect(check.text.hasPrefix("HTTP/1.1 200"), "\(check.text.debugDescription)")

            let seen = heads.withLockedValue { $0 }
            try #require(seen.count == 3, "\(seen); answers: \([v1, v2, check].map { "\($0.text.debugDescription) \($0.error ?? "")" })")
            #expect(seen[0].contains("x-forwarded-for: 203.0.113.7\r\n") && seen[0].contains("forwarded: for=203.0.113.7;"), "\(seen[0])")
            #expect(seen[1].contains("x-forwarded-for: 2001:0:1234::7\r\n") && seen[1].contains("for=\"[2001:0:1234::7]\""), "\(seen[1])")
            #expect(seen[2].contains("x-forwarded-for: 127.0.0.1\r\n"), "\(seen[2])")
        }
    }

    /// Behind a TCP load balancer, TLS starts after the header: the header is read in the clear, then the handshake.
    @Test func theHeaderComesBeforeTLS() async throws {
        try await TLSProxyTests().withTLSProxy(configure: { $0.acceptProxyProtocol = true }) { _, port, heads in
            let response = try await RawClient.exchange(
                port: port, ["GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"], tls: try TestCertificate.a.clientContext(),
                plainPrefix: ByteBuffer(string: "PROXY TCP4 198.51.100.9 10.0.0.1 40000 443\r\n"))
            #expect(response.text.hasPrefix("HTTP/1.1 200"), "\(response.text.debugDescription) \(response.error ?? "")")
            let seen = heads.withLockedValue { $0 }
            #expect(seen.count == 1 && seen[0].contains("x-forwarded-for: 198.51.100.9\r\nx-forwarded-proto: https"), "\(seen)")
        }
    }

    /// The balancer sends its header to the plain-HTTP redirect port as well.
    @Test func theHTTPSRedirectListenerReadsTheHeaderToo() async throws {
        try await TLSProxyTests().withTLSProxy(configure: {
            $0.acceptProxyProtocol = true
            $0.httpRedirect = HTTPRedirectConfiguration(listen: HostPort(host: "127.0.0.1", port: 0))
        }) { server, port, _ in
            let plainPort = try #require(server.addresses?.httpRedirect?.port)
            let redirected = try await RawClient.exchange(
                port: plainPort, ["PROXY TCP4 198.51.100.9 10.0.0.1 40000 80\r\nGET /cart HTTP/1.1\r\nHost: shop.example\r\n\r\n"])
            #expect(redirected.status == 308 && redirected.header("location") == "https://shop.example:\(port)/cart", "\(redirected.text.debugDescription)")
            let bare = try await RawClient.exchange(port: plainPort, ["GET /cart HTTP/1.1\r\nHost: shop.example\r\n\r\n"])
            #expect(bare.text.isEmpty && bare.closedByPeer, "\(bare.text.debugDescription)")
        }
    }

    /// A client that closes its side before any header (a load balancer's TCP health check) is closed at once, not
    /// after the header read timeout (15 s here; the exchange gives up after 8).
    @Test func aClientThatLeavesBeforeTheHeaderIsClosedAtOnce() async throws {
        try await withProxy { port, heads, _ in
            let response = try await RawClient.exchange(port: port, [""], halfClose: true, timeout: .seconds(8))
            #expect(response.text.isEmpty && response.closedByPeer, "still open: \(response.text.debugDescription)")
            #expect(heads.withLockedValue { $0 }.isEmpty)
        }
    }

    @Test func aConnectionWithoutAValidHeaderNeverReachesABackend() async throws {
        try await withProxy(headerReadTimeout: 3) { port, heads, server in
            for (bytes, what) in [
                ("GET / HTTP/1.1\r\nHost: t\r\n\r\n", "a plain request"),
                ("PROXY TCP4 203.0.113.7 10.0.0.1 5555\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n", "a malformed header"),
                ("PROXY TCP4 203.0.", "a header that never ends (the header read timeout, 3 s)"),
            ] {
                let response = try await RawClient.exchange(port: port, [bytes], timeout: .seconds(20))
                #expect(response.text.isEmpty && response.closedByPeer, "\(what): \(response.text.debugDescription)")
            }
            #expect(heads.withLockedValue { $0 }.isEmpty)
            #expect(server.metrics.exposition().contains("concord_proxy_proxy_protocol_rejected_total 3"))
        }
    }

    /// A reload that turns accepting the PROXY protocol on applies to the connections accepted after it, on the
    /// direct HTTP engine too (until 2026-12-03 that engine could not read the header, and the reload was refused).
    @Test func aReloadTurnsAcceptingOnForTheDirectHTTPEngine() async throws {
        let heads = NIOLockedValueBox<[String]>([])
        let backend = try await TestScriptedBackend.start { head, _ in
            heads.withLockedValue { $0.append(head) }
            return Self.ok
        }
        do {
            var plain = ProxyConfiguration(backends: [try HostPort(parsing: backend.address)], balance: .roundRobin)
            plain.health = ProxyHarness.quietHealth
            try await ProxyHarness.withProxy(plain, httpEngine: .direct) { server, port in
                #expect(server.httpEngineInUse == .direct)
                var accepting = server.configuration
                accepting.acceptProxyProtocol = true
                try server.apply(accepting)
                #expect(server.configuration.acceptProxyProtocol)
                let proxied = try await RawClient.exchange(
                    port: port, ["PROXY TCP4 203.0.113.9 10.0.0.1 5555 80\r\nGET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"])
                #expect(proxied.status == 200, "\(proxied.text.debugDescription)")
                var off = server.configuration
                off.acceptProxyProtocol = false
                try server.apply(off)
                #expect(try await RawClient.get(port: port).status == 200)
                let seen = heads.withLockedValue { $0 }
                #expect(seen.count == 2 && seen[0].contains("x-forwarded-for: 203.0.113.9\r\n") && seen[1].contains("x-forwarded-for: 127.0.0.1\r\n"), "\(seen)")
            }
        } catch {
            await backend.stop()
            throw error
        }
        await backend.stop()
    }

    /// L4 on both engines (the direct engine reads the header on its own loops since 2026-12-03; before, a listener
    /// accepting the PROXY protocol ran on nio).
    private func withL4Proxy(engine: TCPEngine, proxyProtocol: ProxyProtocolVersion? = .v1, headerReadTimeout: Double = 15,
                             _ body: (_ server: ProxyServer, _ port: Int) async throws -> Void) async throws {
        try await ProxyHarness.withServers(["e0"], start: { try await TestEchoBackend.start(name: $0) }) { backends in
            var config = ProxyConfiguration(backends: [try HostPort(parsing: backends[0].address)], mode: .tcp, balance: .hash)
            config.health = ProxyHarness.quietHealth
            config.acceptProxyProtocol = true
            config.proxyProtocol = proxyProtocol
            config.tcpEngine = engine
            config.limits.headerReadTimeout = headerReadTimeout
            try await ProxyHarness.withProxy(config) { server, port in
                #expect(server.tcpEngineInUse == engine)
                try await body(server, port)
            }
        }
    }

    @Test(arguments: TCPEngine.allCases)
    func l4TakesTheClientFromTheHeaderAndPassesItOn(engine: TCPEngine) async throws {
        try await withL4Proxy(engine: engine) { _, port in
            // The echo backend got the header the proxy wrote — naming the client and destination it was told —
            // then the client's bytes; the header arrives in two pieces, the bytes after it with the second.
            let response = try await RawClient.exchange(
                port: port, ["PROXY TCP4 203.0.", "113.7 10.0.0.1 5555 443\r\nhello"], pause: .milliseconds(50), halfClose: true)
            #expect(response.text == "e0:PROXY TCP4 203.0.113.7 10.0.0.1 5555 443\r\nhello|bye", "\(response.text.debugDescription)")
            // v2 LOCAL (the balancer's health check): the connection's own addresses.
            var local = ByteBuffer()
            ProxyProtocolHeader.encode(.v2, source: nil, destination: nil, into: &local)
            let check = try await RawClient.exchange(
                port: port, [String(decoding: local.readableBytesView, as: UTF8.self) + "ping"], halfClose: true)
            #expect(check.text.hasPrefix("e0:PROXY TCP4 127.0.0.1 127.0.0.1 ") && check.text.hasSuffix("\r\nping|bye"),
                    "\(check.text.debugDescription)")
        }
    }

    /// A v2 header in, a v2 header out: the backend's header names the IPv6 client and destination of the header
    /// received, in front of the client's bytes.
    @Test(arguments: TCPEngine.allCases)
    func l4PassesAnIPv6ClientOnInAV2Header(engine: TCPEngine) async throws {
        try await withL4Proxy(engine: engine, proxyProtocol: .v2) { _, port in
            let source = try SocketAddress(ipAddress: "2001:0:1234::7", port: 4660)
            let destination = try SocketAddress(ipAddress: "2001:0:1234::1", port: 80)
            var header = ByteBuffer()
            ProxyProtocolHeader.encode(.v2, source: source, destination: destination, into: &header)
            let text = String(decoding: header.readableBytesView, as: UTF8.self)
            #expect(text.utf8.count == header.readableBytes, "every byte of the header is ASCII, so the text is the header")
            let response = try await RawClient.exchange(port: port, [text + "hello"], halfClose: true)
            #expect(response.text == "e0:" + text + "hello|bye", "\(response.text.debugDescription)")
        }
    }

    /// A connection whose first bytes are no valid header — plain bytes, a malformed header, one that never ends —
    /// and one that leaves before any header are closed and never reach a backend (the echo backend would greet).
    @Test(arguments: TCPEngine.allCases)
    func l4ConnectionsWithoutAValidHeaderNeverReachABackend(engine: TCPEngine) async throws {
        try await withL4Proxy(engine: engine, headerReadTimeout: 1) { _, port in
            for (bytes, what) in [("hello", "plain bytes"), ("PROXY TCP4 203.0.113.7 10.0.0.1 5555\r\nhello", "a malformed header"),
                                  ("PROXY TCP4 203.0.", "a header that never ends (the header read timeout, 1 s)"),
                                  (String(repeating: "PROXY ", count: 1), "the start of a header, then EOF")] {
                let started = ContinuousClock.now
                let response = try await RawClient.exchange(port: port, [bytes], halfClose: what.hasSuffix("EOF"), timeout: .seconds(8))
                #expect(response.text.isEmpty && response.closedByPeer, "\(what): \(response.text.debugDescription)")
                #expect(ContinuousClock.now - started < .seconds(5), "\(what): closed after \(ContinuousClock.now - started)")
            }
            let left = try await RawClient.exchange(port: port, [""], halfClose: true, timeout: .seconds(8))
            #expect(left.text.isEmpty && left.closedByPeer, "a client that leaves before the header: \(left.text.debugDescription)")
        }
    }
}
