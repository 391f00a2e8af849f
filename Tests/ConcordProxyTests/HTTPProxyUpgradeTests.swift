import ConcordTLSTestSupport
import ConcordSessionsTesting
import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOConcurrencyHelpers
import Testing

@testable import ConcordProxy

/// End to end: a WebSocket handshake goes to its key's backend, and on a 101 the client and backend connections
/// become one byte tunnel (both ways, half-close passed on); any other answer closes the client connection.
@Suite(.serialized, .timeLimit(.minutes(3))) struct HTTPProxyUpgradeTests {
    static func upgradeRequest(cookie: String? = nil) -> String {
        "GET /chat HTTP/1.1\r\nHost: t\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            + (cookie.map { "Cookie: sid=\($0)\r\n" } ?? "") + "\r\n"
    }

    /// A backend that switches on an upgrade request (sending `welcome-NAME|` with its 101, then echoing every
    /// byte) and answers anything else 200 with its name; it keeps the request heads it saw.
    static func switchingBackend(_ name: String, heads: NIOLockedValueBox<[String]>) async throws -> TestScriptedBackend {
        try await TestScriptedBackend.start { head, _ in
            heads.withLockedValue { $0.append(head) }
            if head.lowercased().contains("\r\nupgrade: websocket") {
                return .init(
                    bytes: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Backend: \(name)\r\n\r\nwelcome-\(name)|",
                    thenEcho: true)
            }
            return .init(bytes: "HTTP/1.1 200 OK\r\nContent-Length: \(name.utf8.count)\r\nX-Backend: \(name)\r\n\r\n\(name)")
        }
    }

    static func withSwitchingBackends(balance: BalanceStrategy = .hash, tls: ProxyTLSConfiguration? = nil,
                                      maxConnections: Int? = nil, httpEngine: HTTPEngine? = nil, acceptProxyProtocol: Bool = false,
                                      _ body: (_ port: Int, _ server: ProxyServer, _ heads: [String: NIOLockedValueBox<[String]>]) async throws -> Void) async throws {
        var backends: [(String, TestScriptedBackend)] = []
        var heads: [String: NIOLockedValueBox<[String]>] = [:]
        do {
            for name in ["b0", "b1", "b2"] {
                let seen = NIOLockedValueBox<[String]>([])
                heads[name] = seen
                backends.append((name, try await switchingBackend(name, heads: seen)))
            }
            var config = ProxyConfiguration(
                backends: try backends.map { try HostPort(parsing: $0.1.address) }, balance: balance,
                key: try KeyChain(parsing: "cookie:sid"))
            config.health = ProxyHarness.quietHealth
            config.tls = tls
            if let maxConnections { config.limits.maxConnections = maxConnections }
            config.acceptProxyProtocol = acceptProxyProtocol
            try await ProxyHarness.withProxy(config, httpEngine: httpEngine) { server, port in try await body(port, server, heads) }
        } catch {
            for (_, backend) in backends { await backend.stop() }
            throw error
        }
        for (_, backend) in backends { await backend.stop() }
    }

    @Test func aSecureWebSocketIsTunnelledBehindTheProxysTLS() async throws {
        try await TestCertificate.withDirectory { directory in
            try await Self.withSwitchingBackends(tls: try TestCertificate.a.install(in: directory)) { port, server, heads in
                let tls = try TestCertificate.a.clientContext()
                let plain = try await RawClient.get(port: port, headers: ["Cookie": "sid=dave"], tls: tls)
                let owner = try #require(plain.header("X-Backend"))
                // wss://: TLS ends at the proxy, the backend switches a plain connection; bytes flow both ways.
                let tunnel = try await RawClient.exchange(
                    port: port, [Self.upgradeRequest(cookie: "dave") + "early|", "late|"], pause: .milliseconds(100),
                    halfClose: true, tls: tls)
                #expect(tunnel.status == 101, "\(tunnel.text) \(tunnel.error ?? "")")
                #expect(tunnel.header("X-Backend") == owner)
                #expect(tunnel.body == "welcome-\(owner)|early|late|")
                let asked = try #require(heads[owner]?.withLockedValue { $0.last })
                #expect(asked.contains("\r\nx-forwarded-proto: https\r\n"))
                #expect(server.metrics.exposition().contains("concord_proxy_upgrades_total 1"))
            }
        }
    }

    @Test func aWebSocketHandshakeBecomesATunnelToTheKeysBackend() async throws {
        try await Self.withSwitchingBackends { port, server, heads in
            for user in ["alice", "bob", "carol"] {
                let plain = try await RawClient.get(port: port, headers: ["Cookie": "sid=\(user)"])
                let owner = try #require(plain.header("X-Backend"))
                // Bytes sent right behind the handshake (before the answer) and later ones both arrive, in order,
                // after what the backend sent with its 101; the client's half-close ends the tunnel both ways.
                let tunnel = try await RawClient.exchange(
                    port: port, [Self.upgradeRequest(cookie: user) + "early-\(user)|", "late-\(user)|"],
                    pause: .milliseconds(100), halfClose: true)
                #expect(tunnel.status == 101, "\(tunnel.text)")
                #expect(tunnel.header("X-Backend") == owner, "\(user): the upgrade went to another backend than the user's requests")
                #expect(tunnel.header("Upgrade") == "websocket")
                #expect(tunnel.body == "welcome-\(owner)|early-\(user)|late-\(user)|")
                // The backend was asked to switch, on the proxy's hop, with the client's own fields.
                let asked = try #require(heads[owner]?.withLockedValue { $0.last })
                #expect(asked.hasPrefix("GET /chat HTTP/1.1\r\n"))
                #expect(asked.contains("\r\nconnection: upgrade\r\nupgrade: websocket"))
                #expect(asked.contains("\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"))
                #expect(asked.contains("\r\nx-forwarded-for: 127.0.0.1"))
                #expect(!asked.contains("keep-alive"))
            }
            #expect(server.metrics.exposition().contains("concord_proxy_upgrades_total 3"))
            // The tunnels released their picks when they closed: no request is left in flight.
            try await waitUntil { server.runtime.balancer.statuses().allSatisfy { $0.active == 0 } }
        }
    }

    /// The direct HTTP engine hands a connection whose request asks to switch protocols to SwiftNIO with every byte
    /// it has read from that request on — also in the middle of a keep-alive connection, and with the new protocol's
    /// first bytes in the same write as the handshake (the suite runs on both engines: scripts/test).
    @Test func anUpgradeAfterARequestOnTheSameConnectionBecomesATunnel() async throws {
        try await Self.withSwitchingBackends { port, server, _ in
            let plain = try await RawClient.get(port: port, headers: ["Cookie": "sid=erin"])
            let owner = try #require(plain.header("X-Backend"))
            let exchange = try await RawClient.exchange(
                port: port, ["GET /first HTTP/1.1\r\nHost: t\r\nCookie: sid=erin\r\n\r\n", Self.upgradeRequest(cookie: "erin") + "early|", "late|"],
                pause: .milliseconds(100), halfClose: true)
            #expect(exchange.status == 200, "\(exchange.text)")
            #expect(exchange.text.components(separatedBy: "HTTP/1.1 101 ").count == 2, "\(exchange.text)")
            #expect(exchange.text.hasSuffix("welcome-\(owner)|early|late|"), "\(exchange.text)")
            #expect(server.metrics.exposition().contains("concord_proxy_upgrades_total 1"))
        }
    }

    /// Behind a load balancer that sends the PROXY protocol: the direct HTTP engine reads the header, and a WebSocket
    /// upgrade after it goes to SwiftNIO with the client the header named — SwiftNIO's path must not wait for a second
    /// header (the connection would be closed as having none).
    @Test(arguments: [HTTPEngine.direct, .nio])
    func anUpgradeBehindAProxyProtocolHeaderKeepsTheHeadersClient(engine: HTTPEngine) async throws {
        try await Self.withSwitchingBackends(httpEngine: engine, acceptProxyProtocol: true) { port, server, heads in
            #expect(server.httpEngineInUse == engine)
            let exchange = try await RawClient.exchange(
                port: port, ["PROXY TCP4 203.0.113.7 10.0.0.1 5555 80\r\n" + Self.upgradeRequest(cookie: "hal") + "early|", "late|"],
                pause: .milliseconds(100), halfClose: true)
            #expect(exchange.text.hasPrefix("HTTP/1.1 101 ") && exchange.text.hasSuffix("|early|late|"), "\(exchange.text)")
            let seen = heads.values.flatMap { $0.withLockedValue { $0 } }
            #expect(seen.count == 1 && seen[0].contains("x-forwarded-for: 203.0.113.7\r\n"), "\(seen)")
        }
    }

    /// A connection the direct HTTP engine hands to SwiftNIO (a WebSocket tunnel here) keeps its place under
    /// `maxConnections` until it closes. It used to leave the engine's count and join SwiftNIO's, so each engine could
    /// hold the limit: with 2 tunnels open and a limit of 3, two more clients were served.
    @Test func aHandedOverConnectionCountsAgainstMaxConnectionsUntilItCloses() async throws {
        try await Self.withSwitchingBackends(maxConnections: 3, httpEngine: .direct) { port, server, _ in
            var tunnels: [BlockingSocket] = []
            for user in ["fay", "gus"] {
                let tunnel = try BlockingSocket(port: port)
                await tunnel.send(Self.upgradeRequest(cookie: user))
                let answer = await tunnel.read { String(decoding: $0, as: UTF8.self).hasSuffix("|") }
                #expect(String(decoding: answer.bytes, as: UTF8.self).hasPrefix("HTTP/1.1 101 "))
                tunnels.append(tunnel)
            }
            // The third connection is the limit's last.
            let third = try BlockingSocket(port: port)
            await third.send("GET / HTTP/1.1\r\nHost: t\r\nCookie: sid=hal\r\n\r\n")
            let served = await third.read { String(decoding: $0, as: UTF8.self).contains("\r\n\r\nb") }
            #expect(String(decoding: served.bytes, as: UTF8.self).hasPrefix("HTTP/1.1 200 "))
            // A fourth is over it: closed without an answer.
            let refused = try await RawClient.exchange(port: port, ["GET / HTTP/1.1\r\nHost: t\r\n\r\n"], timeout: .seconds(5))
            #expect(refused.status == nil && refused.closedByPeer, "\(refused.text)")
            // A tunnel that closes gives its place back.
            tunnels.removeLast()
            try await waitUntil { server.openClientConnections <= 2 + 1 }
            let after = try await RawClient.exchange(port: port, ["GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"], timeout: .seconds(5))
            #expect(after.status == 200, "\(after.text)")
            withExtendedLifetime((tunnels, third)) {}
        }
    }

    @Test func aRefusedUpgradeIsAnsweredAndTheClientConnectionCloses() async throws {
        try await ProxyHarness.withScriptedBackend({ _, _ in
            .init(bytes: "HTTP/1.1 426 Upgrade Required\r\nContent-Length: 2\r\n\r\nno")
        }) { port, _ in
            // The bytes after the handshake would be a second request if the connection stayed HTTP: never answered.
            let response = try await RawClient.exchange(
                port: port, [Self.upgradeRequest() + "GET /next HTTP/1.1\r\nHost: t\r\n\r\n"], timeout: .seconds(30))
            #expect(response.status == 426)
            #expect(response.header("connection") == "close")
            #expect(response.body == "no")
            #expect(response.text.components(separatedBy: "HTTP/1.1 ").count == 2)
            #expect(response.closedByPeer, "closed by the proxy, not by the client's time limit")
        }
    }

    /// A backend may stop reading HTTP on a connection that carried an upgrade request, whatever it answered
    /// (SwiftNIO's HTTP server does; here the backend echoes what follows, as a tunnel would): that connection is
    /// not pooled, so the next client's request gets a fresh one and its own answer (it waited 60 s for a 504).
    @Test func aRefusedUpgradeDoesNotPoolTheBackendConnection() async throws {
        try await ProxyHarness.withScriptedBackend({ head, _ in
            head.lowercased().contains("upgrade: websocket")
                ? .init(bytes: "HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno", thenEcho: true)
                : .init(bytes: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        }) { port, _ in
            let refused = try await RawClient.exchange(port: port, [Self.upgradeRequest()], timeout: .seconds(10))
            #expect(refused.status == 404)
            for attempt in 0..<3 {
                let next = try await RawClient.exchange(
                    port: port, ["GET /next HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"], timeout: .seconds(10))
                #expect(next.status == 200 && next.body == "ok", "attempt \(attempt): \(next.text.prefix(300))")
            }
        }
    }

    /// `Upgrade: h2c` is not a switch the proxy carries: the request reaches the backend without `Upgrade` (and
    /// without the hop-by-hop `HTTP2-Settings`), and the connection stays HTTP/1.1 for the next request.
    @Test func anH2CUpgradeRequestIsAnsweredAsPlainHTTP1() async throws {
        let heads = NIOLockedValueBox<[String]>([])
        try await ProxyHarness.withScriptedBackend({ head, _ in
            heads.withLockedValue { $0.append(head) }
            return .init(bytes: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        }) { port, _ in
            let h2c = "GET /a HTTP/1.1\r\nHost: t\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
                + "HTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n"
            let response = try await RawClient.exchange(
                port: port, [h2c + "GET /b HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"], timeout: .seconds(4))
            #expect(response.text.components(separatedBy: "HTTP/1.1 200 OK").count == 3, "both requests answered: \(response.text)")
            let first = response.text.components(separatedBy: "\r\n\r\nok").first ?? ""
            #expect(!first.lowercased().contains("connection: close"), "the first answer keeps the connection: \(first)")
            let seen = heads.withLockedValue { $0 }
            #expect(seen.count == 2)
            #expect(seen.allSatisfy { !$0.lowercased().contains("upgrade") && !$0.lowercased().contains("http2-settings") },
                    "\(seen)")
        }
    }

    /// The client half-closes right behind its handshake, long before the (slowly sent) 101: the connection
    /// stays, switches, and the EOF then reaches the backend through the tunnel.
    @Test func aClientThatHalfClosesBeforeThe101StillGetsItsTunnel() async throws {
        let head = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nhi|"
        try await ProxyHarness.withScriptedBackend({ _, _ in .init(bytes: head, piecesOf: 8, thenEcho: true) }) { port, _ in
            let tunnel = try await RawClient.exchange(port: port, [Self.upgradeRequest() + "early|"], halfClose: true)
            #expect(tunnel.status == 101, "\(tunnel.text)")
            #expect(tunnel.body == "hi|early|")
        }
    }

    @Test func aStickyCookieGoesWithThe101() async throws {
        try await Self.withSwitchingBackends(balance: .stickyCookie) { port, _, _ in
            let tunnel = try await RawClient.exchange(port: port, [Self.upgradeRequest(), "ping|"],
                                                      pause: .milliseconds(100), halfClose: true)
            #expect(tunnel.status == 101)
            let cookie = try #require(tunnel.header("set-cookie"))
            #expect(cookie.hasPrefix("CONCORDSRV="))
            #expect(tunnel.body.hasSuffix("|ping|"))
            // The cookie names the backend that answered: a plain request with it lands there too.
            let owner = try #require(tunnel.header("X-Backend"))
            let token = String(cookie.split(separator: ";")[0])
            let plain = try await RawClient.get(port: port, headers: ["Cookie": token])
            #expect(plain.header("X-Backend") == owner)
        }
    }

    /// A hand-off to SwiftNIO that fails before its initializer sees a channel (here: a UDP socket, on which the
    /// TCP options fail) still gives the connection's admission back (`closed`); it waited for a
    /// close it would never hear of.
    @Test func aHandOffThatFailsBeforeAChannelExistsGivesItsAdmissionBack() async throws {
        let closedCount = NIOLockedValueBox(0)
        let handOff = ProxyServer.handOff(group: MultiThreadedEventLoopGroup.singleton,
                                          initializer: { channel, _ in channel.eventLoop.makeSucceededVoidFuture() }, logger: Logger(label: "test"))
        let notASocket = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        try #require(notASocket >= 0)
        handOff(notASocket, ByteBuffer(string: "GET / HTTP/1.1\r\n\r\n"), nil) { closedCount.withLockedValue { $0 += 1 } }
        let gaveBack = await eventually(timeout: .seconds(5)) { closedCount.withLockedValue { $0 } > 0 }
        #expect(gaveBack)
        try await Task.sleep(for: .milliseconds(100))
        #expect(closedCount.withLockedValue { $0 } == 1, "exactly once")
    }
}
