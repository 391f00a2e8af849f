import Foundation
import NIOConcurrencyHelpers
import Testing

@testable import ConcordProxy

/// End to end: the client's request bytes reach the backend as they came, plus the forwarding fields and minus
/// the hop-by-hop ones; requests that two parsers could read differently never reach it.
@Suite(.serialized, .timeLimit(.minutes(3))) struct HTTPProxyRequestForwardingTests {
    static let ok = TestScriptedBackend.Reply(bytes: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    /// Runs `body` with the port of a proxy in front of a backend that answers every request 200 and appends its
    /// head to `seen`.
    static func withRecordingBackend(_ seen: NIOLockedValueBox<[String]>, _ body: (Int) async throws -> Void) async throws {
        try await ProxyHarness.withScriptedBackend({ head, _ in
            seen.withLockedValue { $0.append(head) }
            return Self.ok
        }) { port, _ in try await body(port) }
    }

    @Test func theBackendGetsTheClientsHeadPlusForwardingFields() async throws {
        let seen = NIOLockedValueBox<[String]>([])
        try await Self.withRecordingBackend(seen) { port in
            let response = try await RawClient.exchange(port: port, [
                "GET /a?b=c HTTP/1.1\r\nHost: t\r\nX-Mixed-Case: Kept\r\nCookie: sid=1\r\n\r\n"
                    + "GET /b HTTP/1.1\r\nHost: t\r\nConnection: X-Private, close\r\nX-Private: secret\r\nKeep-Alive: 5\r\n"
                    + "X-Forwarded-For: 6.6.6.6\r\nUpgrade: h2c\r\nX-Real-IP: 6.6.6.6\r\nX-Forwarded-Host: evil.example\r\n\r\n",
            ])
            #expect(response.text.components(separatedBy: "HTTP/1.1 200").count == 3, "\(response.text.debugDescription)")
        }
        let forwarding = "x-forwarded-for: 127.0.0.1\r\nx-forwarded-proto: http\r\nforwarded: for=127.0.0.1;proto=http"
        #expect(seen.withLockedValue { $0 } == [
            "GET /a?b=c HTTP/1.1\r\nHost: t\r\nX-Mixed-Case: Kept\r\nCookie: sid=1\r\n" + forwarding,
            // Hop-by-hop fields (and the one Connection names) are gone; the client's X-Forwarded-For is replaced,
            // its X-Real-IP and X-Forwarded-Host removed.
            "GET /b HTTP/1.1\r\nHost: t\r\n" + forwarding,
        ])
    }

    /// `Connection: host` does not take Host away: the backend would get an HTTP/1.1 request without one.
    @Test func hostNamedByConnectionStillReachesTheBackend() async throws {
        let seen = NIOLockedValueBox<[String]>([])
        try await Self.withRecordingBackend(seen) { port in
            let response = try await RawClient.exchange(port: port, ["GET /c HTTP/1.1\r\nHost: t\r\nConnection: host, x-a, close\r\nX-A: 1\r\n\r\n"])
            #expect(response.status == 200, "\(response.text.debugDescription)")
        }
        let forwarding = "x-forwarded-for: 127.0.0.1\r\nx-forwarded-proto: http\r\nforwarded: for=127.0.0.1;proto=http"
        #expect(seen.withLockedValue { $0 } == ["GET /c HTTP/1.1\r\nHost: t\r\n" + forwarding])
    }

    /// A request in absolute-form reaches the backend in origin-form with `Host` from its target — the backend
    /// would have ignored the client's `Host` for it — as the proxy's keys read it.
    @Test func anAbsoluteFormRequestReachesTheBackendInOriginForm() async throws {
        let seen = NIOLockedValueBox<[String]>([])
        try await Self.withRecordingBackend(seen) { port in
            let response = try await RawClient.exchange(port: port, [
                "GET http://shop.example/cart?sid=1 HTTP/1.1\r\nHost: elsewhere.example\r\nConnection: close\r\n\r\n",
            ])
            #expect(response.status == 200, "\(response.text.debugDescription)")
        }
        #expect(seen.withLockedValue { $0 } == [
            "GET /cart?sid=1 HTTP/1.1\r\nHost: shop.example\r\n"
                + "x-forwarded-for: 127.0.0.1\r\nx-forwarded-proto: http\r\nforwarded: for=127.0.0.1;proto=http",
        ])
    }

    @Test func anHTTP10RequestStaysHTTP10AndKeepsTheBackendConnection() async throws {
        let seen = NIOLockedValueBox<[String]>([])
        try await Self.withRecordingBackend(seen) { port in
            let response = try await RawClient.exchange(port: port, ["GET /old HTTP/1.0\r\n\r\n"])
            #expect(response.text.hasPrefix("HTTP/1.0 200 OK\r\n") && response.body == "ok", "\(response.text.debugDescription)")
            #expect(response.header("connection") == "close")
        }
        #expect(seen.withLockedValue { $0 }.first?.hasPrefix("GET /old HTTP/1.0\r\n") == true)
        #expect(seen.withLockedValue { $0 }.first?.hasSuffix("connection: keep-alive") == true)
    }

    /// Smuggling vectors and malformed requests: 400 (or 505) and the connection closed; the backend never sees
    /// any of them, not even the valid request that follows on the same connection.
    @Test func ambiguousOrMalformedRequestsAre400AndNeverReachTheBackend() async throws {
        let seen = NIOLockedValueBox<[String]>([])
        try await Self.withRecordingBackend(seen) { port in
            let next = "GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n"
            let cases: [(String, Int)] = [
                ("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
                ("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde", 400),
                ("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", 400),
                ("GET / HTTP/1.1\r\nHost: t\r\nX-A: 1\r\n folded\r\n\r\n", 400),
                ("GET / HTTP/1.1\nHost: t\n\n", 400),
                ("G@T / HTTP/1.1\r\nHost: t\r\n\r\n", 400),
                ("GET / HTTP/1.1\r\nBad Name: 1\r\nHost: t\r\n\r\n", 400),
                ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
                ("GET / HTTP/3.0\r\nHost: t\r\n\r\n", 505),
            ]
            for (request, status) in cases {
                let response = try await RawClient.exchange(port: port, [request + next])
                #expect(response.status == status, "\(request.debugDescription): \(response.text.prefix(200))")
                #expect(response.text.components(separatedBy: "HTTP/1.").count == 2, "one response, then closed")
            }
            // A bad chunk size after the head went out: the exchange cannot be completed; nothing after it is read.
            _ = try await RawClient.exchange(port: port, [
                "POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n", "zz\r\n" + next,
            ], pause: .milliseconds(50))
        }
        #expect(seen.withLockedValue { $0 }.allSatisfy { !$0.contains("/smuggled") })
        #expect(seen.withLockedValue { $0 }.count <= 1, "only the chunked POST's head went out")
    }

    @Test func expectContinueIsAnsweredByTheProxy() async throws {
        try await ProxyHarness.withBackends(["a"]) { backends in
            try await ProxyHarness.withProxy(try ProxyHarness.configuration(backends, balance: .roundRobin)) { _, port in
                // The client would wait for 100 Continue before sending the body: the proxy sends it at once.
                let response = try await RawClient.exchange(port: port, [
                    "POST /p HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\nConnection: close\r\n\r\n", "hello",
                ], pause: .milliseconds(100))
                #expect(response.text.hasPrefix("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"), "\(response.text.debugDescription)")
                #expect(response.text.hasSuffix("\r\n\r\na body=5"), "\(response.text.debugDescription)")
                // Not for a request without a body, nor for HTTP/1.0, nor when the body is refused (413).
                let get = try await RawClient.exchange(port: port, ["GET / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"])
                #expect(get.status == 200)
                let old = try await RawClient.exchange(port: port, ["POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx"])
                #expect(old.text.hasPrefix("HTTP/1.0 200 OK\r\n"), "\(old.text.debugDescription)")
                let large = try await RawClient.exchange(port: port, [
                    "POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 99999999999\r\n\r\n",
                ])
                #expect(large.status == 413)
                // On a keep-alive connection, after a response: the 100 follows it, and the connection serves on (the
                // direct engine handed such a connection to SwiftNIO until 2026-12-03).
                let kept = try await RawClient.exchange(port: port, [
                    "GET /first HTTP/1.1\r\nHost: t\r\n\r\n",
                    "POST /p HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n", "hello",
                    "GET /last HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
                ], pause: .milliseconds(100))
                let statuses = kept.text.components(separatedBy: "HTTP/1.1 ").dropFirst().map { String($0.prefix(3)) }
                #expect(statuses == ["200", "100", "200", "200"], "\(kept.text.debugDescription)")
                #expect(kept.text.contains("a body=5"), "\(kept.text.debugDescription)")
            }
        }
    }

    @Test func keysComeFromTheRequestsBytes() async throws {
        try await ProxyHarness.withBackends(["a", "b", "c"]) { backends in
            for key in ["header:X-User", "query:user", "path"] {
                try await ProxyHarness.withProxy(try ProxyHarness.configuration(backends, key: key)) { _, port in
                    var owners: Set<String> = []
                    for user in 0..<12 {
                        let path = key == "path" ? "/u\(user)" : "/?x=1&user=u\(user)"
                        let first = try await RawClient.get(port: port, path: path, headers: ["x-user": "u\(user)"])
                        let again = try await RawClient.get(port: port, path: path, headers: ["X-USER": "u\(user)"])
                        #expect(first.status == 200 && first.body == again.body, "\(key) u\(user)")
                        owners.insert(first.body)
                    }
                    #expect(owners.count > 1, "\(key): keys spread over the backends")
                }
            }
        }
    }
}
