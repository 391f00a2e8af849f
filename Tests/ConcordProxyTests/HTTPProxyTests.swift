import ConcordSessionsTesting
import Foundation
import Testing

@testable import ConcordProxy

@Suite(.serialized, .timeLimit(.minutes(3))) struct HTTPProxyTests {
    @Test func hashAffinityPerKeyAndOnlyAKilledBackendsKeysMove() async throws {
        try await ProxyHarness.withBackends(["a", "b", "c"]) { backends in
            try await ProxyHarness.withProxy(try ProxyHarness.configuration(backends)) { _, port in
                var before: [String: String] = [:]
                for user in 0..<30 {
                    let first = try await RawClient.get(port: port, headers: ["Cookie": "sid=user\(user)"])
                    let second = try await RawClient.get(port: port, headers: ["Cookie": "sid=user\(user)"])
                    #expect(first.status == 200)
                    #expect(first.body == second.body, "user\(user) changed backend")
                    before["user\(user)"] = first.body
                }
                #expect(Set(before.values).count == 3)
                let victim = backends[1]
                let hold = try await victim.stopHoldingPort()
                defer { hold.close() }
                for user in 0..<30 {
                    // The first request for the dead backend's keys is retried on the key's next node, whether its
                    // connect was refused or its connection (pooled or fresh) was reset before the response.
                    let response = try await RawClient.get(port: port, headers: ["Cookie": "sid=user\(user)"])
                    #expect(response.status == 200, "user\(user): \(response.text.prefix(300))")
                    if before["user\(user)"] == victim.name {
                        #expect(response.body != victim.name)
                    } else {
                        #expect(response.body == before["user\(user)"], "user\(user) moved although its backend is up")
                    }
                }
            }
        }
    }

    @Test func aConnectionClosedBeforeTheResponseIsRetriedOnTheNextNodeForIdempotentRequestsOnly() async throws {
        let closer = try await TestClosingBackend.start()
        do {
            try await ProxyHarness.withBackends(["b"]) { backends in
                var config = try ProxyHarness.configuration(backends, balance: .roundRobin)
                config.backends = [try HostPort(parsing: closer.address), try HostPort(parsing: backends[0].address)]
                // rise 3: the first active round (a TCP connect, which succeeds) must not bring the closing backend
                // back up if it lands after the GET's passive failure, as it did once on a loaded machine.
                config.health = HealthCheckConfiguration(interval: 30, timeout: 10, rise: 3, fall: 1, ejectAfterConnectFailures: 1)
                // Round-robin picks the closing backend first. It accepts the connection opened for the request,
                // then closes it before any response byte: the GET goes to the next node…
                try await ProxyHarness.withProxy(config) { server, port in
                    let get = try await RawClient.get(port: port)
                    #expect(get.status == 200 && get.body == "b", "\(get.text.prefix(300))")
                    // …and the failure counts against the closing backend (passive check, ejectAfter 1; its active
                    // check, a TCP connect, succeeds).
                    #expect(server.balancer.statuses().first { $0.id == closer.address }?.state == "down")
                }
                // A POST is never sent twice: 502, and b never sees it.
                try await ProxyHarness.withProxy(config) { _, port in
                    let post = try await RawClient.get(port: port, method: "POST", body: "once")
                    #expect(post.status == 502)
                    #expect(backends[0].requests == 1, "only the GET above reached b")
                }
            }
        } catch {
            await closer.stop()
            throw error
        }
        await closer.stop()
    }

    /// A POST whose connect is refused never reached a backend: it goes to the next node instead of a 502 (a node
    /// restarting in the lab answered POSTs 502 before). Once sent, it is never sent again (the test above).
    @Test func aPostWhoseConnectIsRefusedGoesToTheNextNode() async throws {
        try await ProxyHarness.withBackends(["a", "b"]) { backends in
            var config = try ProxyHarness.configuration(backends, balance: .roundRobin)
            config.health = HealthCheckConfiguration(path: "/health", interval: 30, timeout: 10, rise: 3, fall: 1, ejectAfterConnectFailures: 1)
            try await ProxyHarness.withProxy(config) { _, port in
                // The first health round runs at start; `a` goes away after it (the next is 30 s later), so only
                // the POSTs find out.
                let start = ContinuousClock.now
                while backends.contains(where: { $0.healthChecks == 0 }) && ContinuousClock.now - start < .seconds(5) {
                    try await Task.sleep(for: .milliseconds(10))
                }
                try #require(backends.allSatisfy { $0.healthChecks > 0 }, "the first health round did not run")
                let hold = try await backends[0].stopHoldingPort()
                defer { hold.close() }
                // Round-robin offers `a` to one of the first two POSTs; its connect is refused.
                for attempt in 0..<2 {
                    let post = try await RawClient.get(port: port, method: "POST", body: "cart-\(attempt)")
                    // b answers with the body length it received: the whole body went with the retry.
                    #expect(post.status == 200 && post.body == "b body=6", "attempt \(attempt): \(post.text.prefix(300))")
                }
                #expect(backends[1].requests == 2, "each POST reached b once")
            }
        }
    }

    @Test func aStalePooledConnectionIsRetriedOnAFreshConnectionToTheSameBackend() async throws {
        // Each connection answers one request, then closes on the next: every reuse of a pooled connection fails.
        let closer = try await TestClosingBackend.start(answeringFirstRequest: true)
        do {
            var config = ProxyConfiguration(backends: [try HostPort(parsing: closer.address)], balance: .roundRobin)
            config.health = ProxyHarness.quietHealth
            try await ProxyHarness.withProxy(config) { server, port in
                for attempt in 0..<4 {
                    // Attempts after the first take the pooled connection, which fails before any byte; the GET is
                    // sent again on a fresh connection to the same (only) backend instead of answering 502.
                    let get = try await RawClient.get(port: port)
                    #expect(get.status == 200 && get.body == "fresh\n", "attempt \(attempt): \(get.text.prefix(300))")
                }
                // A stale pooled connection says nothing against the backend.
                #expect(server.balancer.statuses().first?.state == "up")
            }
        } catch {
            await closer.stop()
            throw error
        }
        await closer.stop()
    }

    /// Keep-alive connections idling out one after another take few deadline scans on the direct engine (each scan
    /// visits every client): a timeout may be found up to 1/16 of it late, so 100 connections whose 1.6-s keep-alive
    /// ends over about a second take about a dozen scans per loop, not one per deadline (≈ 100 before 2026-12-03;
    /// at 19,500 connections idling out that was ≈ 15 % of a core). None is closed before its timeout.
    @Test func connectionsIdlingOutTakeFewDeadlineScans() async throws {
        var limits = ProxyLimits()
        limits.keepAliveTimeout = 1.6
        try await ProxyHarness.withBackends(["a"]) { backends in
            let config = try ProxyHarness.configuration(backends, balance: .roundRobin, limits: limits)
            try await ProxyHarness.withProxy(config, httpEngine: .direct) { server, port in
                let scansBefore = await server.directEngineDeadlineScans()
                var sockets: [(socket: BlockingSocket, answered: ContinuousClock.Instant)] = []
                for _ in 0..<100 {
                    let socket = try BlockingSocket(port: port, timeout: .seconds(5))
                    await socket.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n")
                    let (bytes, _) = await socket.read { String(decoding: $0, as: UTF8.self).hasSuffix("\r\n\r\na") }
                    #expect(String(decoding: bytes, as: UTF8.self).hasPrefix("HTTP/1.1 200"))
                    sockets.append((socket, .now))
                    try await Task.sleep(for: .milliseconds(10))
                }
                for (index, entry) in sockets.enumerated() {
                    let (_, closed) = await entry.socket.read { _ in false }
                    let open = ContinuousClock.now - entry.answered
                    #expect(closed && open >= .milliseconds(1_550), "connection \(index): closed \(closed) after \(open)")
                }
                let scans = await server.directEngineDeadlineScans() - scansBefore
                #expect(scans <= 40, "\(scans) deadline scans for 100 keep-alive timeouts")
            }
        }
    }

    @Test func roundRobinSpreadsAndKeepAliveWorks() async throws {
        try await ProxyHarness.withBackends(["a", "b", "c"]) { backends in
            try await ProxyHarness.withProxy(try ProxyHarness.configuration(backends, balance: .roundRobin)) { _, port in
                // Six pipelined keep-alive requests on one connection, the last one closing it.
                var pieces = ""
                for i in 0..<6 { pieces += "GET /\(i) HTTP/1.1\r\nHost: t\r\n\(i == 5 ? "Connection: close\r\n" : "")\r\n" }
                let response = try await RawClient.exchange(port: port, [pieces])
                let names = response.text.components(separatedBy: "x-backend: ").dropFirst().map { String($0.prefix(1)) }
                #expect(names.count == 6)
                #expect(Set(names) == ["a", "b", "c"])
            }
        }
    }

    @Test func stickyCookieIsInsertedFollowedAndRewrittenOnFailover() async throws {
        try await ProxyHarness.withBackends(["a", "b", "c"]) { backends in
            try await ProxyHarness.withProxy(try ProxyHarness.configuration(backends, balance: .stickyCookie)) { _, port in
                let first = try await RawClient.get(port: port)
                let setCookie = try #require(first.header("set-cookie"))
                #expect(setCookie.hasPrefix("CONCORDSRV="))
                let cookie = String(setCookie.split(separator: ";")[0])
                for _ in 0..<5 {
                    let again = try await RawClient.get(port: port, headers: ["Cookie": "x=1; \(cookie)"])
                    #expect(again.body == first.body)
                    #expect(again.header("set-cookie") == nil)
                }
                let pinned = backends.first { $0.name == first.body }!
                let hold = try await pinned.stopHoldingPort()
                defer { hold.close() }
                let moved = try await RawClient.get(port: port, headers: ["Cookie": cookie])
                #expect(moved.status == 200)
                #expect(moved.body != pinned.name)
                let rewritten = try #require(moved.header("set-cookie"))
                #expect(rewritten != setCookie)
                let newCookie = String(rewritten.split(separator: ";")[0])
                let follow = try await RawClient.get(port: port, headers: ["Cookie": newCookie])
                #expect(follow.body == moved.body)
            }
        }
    }

    @Test func forwardedHeadersAndPostBodies() async throws {
        try await ProxyHarness.withBackends(["a"]) { backends in
            try await ProxyHarness.withProxy(try ProxyHarness.configuration(backends, balance: .roundRobin)) { _, port in
                let xff = try await RawClient.get(port: port, path: "/echo-xff", headers: ["X-Forwarded-For": "6.6.6.6"])
                // The peer is not trusted: its claim is replaced by the real address.
                #expect(xff.body == "127.0.0.1")
                let body = String(repeating: "z", count: 100_000)
                let post = try await RawClient.get(port: port, path: "/p", method: "POST", body: body)
                #expect(post.body == "a body=100000")
            }
        }
    }

    @Test func chunkedRequestBodiesReachTheBackendWhole() async throws {
        try await ProxyHarness.withBackends(["a"]) { backends in
            try await ProxyHarness.withProxy(try ProxyHarness.configuration(backends, balance: .roundRobin)) { _, port in
                // The chunks arrive in pieces; a keep-alive GET follows on the same connection (the backend's
                // parser would fail on a badly framed body before it).
                let response = try await RawClient.exchange(port: port, [
                    "POST /p HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5;x=1\r\nhel", "lo\r\n6\r\n world\r\n",
                    "0\r\nX-Trailer: t\r\n\r\n" + "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
                ], pause: .milliseconds(50))
                let bodies = response.text.components(separatedBy: "\r\n\r\n").dropFirst().map { String($0.prefix(while: { $0 != "H" })) }
                #expect(bodies == ["a body=11", "a"], "\(response.text.debugDescription)")
            }
        }
    }

    @Test func noBackendIs503AndDeadBackendsAre502() async throws {
        try await ProxyHarness.withBackends(["a"]) { backends in
            var config = try ProxyHarness.configuration(backends, balance: .roundRobin)
            // Only real traffic may find the backend dead here (the active check must not get there first).
            config.health.fall = 1000
            let hold = try await backends[0].stopHoldingPort()
            defer { hold.close() }
            try await ProxyHarness.withProxy(config) { _, port in
                let first = try await RawClient.get(port: port)
                #expect(first.status == 502)
                let second = try await RawClient.get(port: port)
                #expect(second.status == 503)
            }
        }
    }

    @Test func limitsAnswer431_413_400_408AndOtherClientsAreUnaffected() async throws {
        try await ProxyHarness.withBackends(["a"]) { backends in
            let limits = ProxyLimits(maxHeaderBytes: 2048, maxHeaderCount: 20, headerReadTimeout: 0.3, maxBodyBytes: 1000)
            try await ProxyHarness.withProxy(try ProxyHarness.configuration(backends, balance: .roundRobin, limits: limits)) { _, port in
                let big = try await RawClient.get(port: port, headers: ["X-Big": String(repeating: "b", count: 4000)])
                #expect(big.status == 431)
                var many: [String: String] = [:]
                for i in 0..<30 { many["X-H\(i)"] = "v" }
                #expect(try await RawClient.get(port: port, headers: many).status == 431)
                #expect(try await RawClient.get(port: port, method: "POST", body: String(repeating: "x", count: 2000)).status == 413)
                let chunked = "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + "800\r\n" + String(repeating: "y", count: 2048) + "\r\n0\r\n\r\n"
                #expect(try await RawClient.exchange(port: port, [chunked]).status == 413)
                // A chunk whose size alone is over the limit is refused when its size line ends, not after 1000 bytes.
                let announced = try await RawClient.exchange(
                    port: port, ["POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nfffffff\r\nabc"], timeout: .seconds(3))
                #expect(announced.status == 413 && announced.closedByPeer, "\(announced.text.prefix(200))")
                #expect(try await RawClient.exchange(port: port, ["\u{01}\u{02}garbage\r\n\r\n"]).status == 400)
                #expect(try await RawClient.exchange(port: port, ["GET / HTTP/1.1\r\nHost: t\r\nBad Header\r\n\r\n"]).status == 400)
                #expect(try await RawClient.exchange(port: port, ["GET /cart#evil HTTP/1.1\r\nHost: t\r\n\r\n"]).status == 400)
                // Slowloris: headers trickle in and never finish.
                async let slow = RawClient.exchange(port: port, ["GET / HTTP/1.1\r\n", "X-A: 1\r\n", "X-B: 2\r\n"], pause: .milliseconds(150))
                // Meanwhile a good client is served normally.
                let good = try await RawClient.get(port: port)
                #expect(good.status == 200 && good.body == "a")
                #expect(try await slow.status == 408)
            }
        }
    }

    /// A request body that stops coming ("R-U-Dead-Yet") used to hold the client connection and a backend
    /// connection until the backend gave up; now the body may go `bodyReadTimeout` without a byte (→ 408).
    @Test func aRequestBodyThatStopsComingIsAnswered408() async throws {
        try await ProxyHarness.withBackends(["a"]) { backends in
            var limits = ProxyLimits()
            limits.bodyReadTimeout = 0.5
            try await ProxyHarness.withProxy(try ProxyHarness.configuration(backends, balance: .roundRobin, limits: limits)) { _, port in
                let started = ContinuousClock.now
                let stalled = try await RawClient.exchange(
                    port: port, ["POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n", "0123456789"], pause: .milliseconds(100))
                #expect(stalled.status == 408 && stalled.closedByPeer, "\(stalled.text.prefix(200))")
                #expect(ContinuousClock.now - started < .seconds(4), "answered by the body timeout, not the backend's")
                // A body that trickles in, each piece within the timeout, is whole and answered.
                let pieces = ["POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 12\r\nConnection: close\r\n\r\n", "abcd", "efgh", "ijkl"]
                let slow = try await RawClient.exchange(port: port, pieces, pause: .milliseconds(200))
                #expect(slow.status == 200, "\(slow.text.prefix(200))")
            }
        }
    }

    /// A pipelined request's body does not touch the response timeout of the exchange in progress.
    @Test func aPipelinedBodyLeavesTheCurrentResponseTimeoutAlone() async throws {
        try await ProxyHarness.withBackends(["a"]) { backends in
            var limits = ProxyLimits()
            limits.responseTimeout = 0.15  // /slow answers after 300 ms
            limits.bodyReadTimeout = 30
            try await ProxyHarness.withProxy(try ProxyHarness.configuration(backends, balance: .roundRobin, limits: limits)) { _, port in
                // The POST arrives while /slow is at the backend (its response timeout already running).
                let response = try await RawClient.exchange(port: port, [
                    "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n", "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello",
                ], pause: .milliseconds(30), timeout: .seconds(3))
                #expect(response.status == 504, "\(response.text.prefix(300))")
            }
        }
    }

    /// A bad chunk after the head went to the backend: the client gets its 400 (it used to get a bare close).
    @Test func aBadChunkAfterTheHeadWasForwardedIsAnswered400() async throws {
        try await ProxyHarness.withBackends(["a"]) { backends in
            try await ProxyHarness.withProxy(try ProxyHarness.configuration(backends, balance: .roundRobin)) { _, port in
                for bad in ["zz\r\n", "3g\r\n", "-3\r\n", "3\r\nabcX"] {
                    let response = try await RawClient.exchange(
                        port: port, ["POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n", bad], pause: .milliseconds(150))
                    #expect(response.status == 400 && response.closedByPeer, "\(bad.debugDescription): \(response.text.prefix(200))")
                }
                #expect(try await RawClient.get(port: port).status == 200)
            }
        }
    }

    @Test func malformedBytesWhileAResponseIsPendingAreAnswered400AfterIt() async throws {
        try await ProxyHarness.withBackends(["a"]) { backends in
            try await ProxyHarness.withProxy(try ProxyHarness.configuration(backends, balance: .roundRobin)) { _, port in
                // The client stays readable while /slow is on its way; the garbage arrives meanwhile.
                let response = try await RawClient.exchange(
                    port: port, ["GET /slow HTTP/1.1\r\nHost: t\r\n\r\n", "\u{01}\u{02}garbage\r\n\r\n"], pause: .milliseconds(100))
                #expect(response.status == 200, "the response in flight is delivered: \(response.text.prefix(200))")
                // Status codes in the order the responses arrived (a body runs straight into the next status line).
                let statuses = response.text.components(separatedBy: "HTTP/1.1 ").dropFirst().map { String($0.prefix(3)) }
                #expect(statuses == ["200", "400"], "\(response.text.debugDescription)")
            }
        }
    }

    @Test func drainViaTheAdminAPIKeepsBoundKeysAndMetricsAreExported() async throws {
        try await ProxyHarness.withBackends(["a", "b"]) { backends in
            var config = try ProxyHarness.configuration(backends)
            config.admin = HostPort(host: "127.0.0.1", port: 0)
            try await ProxyHarness.withProxy(config) { server, port in
                var owner: [Int: String] = [:]
                for user in 0..<20 { owner[user] = try await RawClient.get(port: port, headers: ["Cookie": "sid=u\(user)"]).body }
                let drained = backends[0]
                let (status, _, _) = AdminServer.respond(method: .POST, uri: "/backends/\(drained.address)/drain", body: "",
                                                         balancer: server.balancer, metrics: server.metrics)
                #expect(status == .ok)
                for user in 0..<20 {
                    #expect(try await RawClient.get(port: port, headers: ["Cookie": "sid=u\(user)"]).body == owner[user])
                }
                for user in 100..<130 {
                    #expect(try await RawClient.get(port: port, headers: ["Cookie": "sid=u\(user)"]).body == "b")
                }
                let (_, list, _) = AdminServer.respond(method: .GET, uri: "/backends", body: "", balancer: server.balancer, metrics: server.metrics)
                #expect(list.contains("\"draining\" : true"))
                let (_, metrics, _) = AdminServer.respond(method: .GET, uri: "/metrics", body: "", balancer: server.balancer, metrics: server.metrics)
                #expect(metrics.contains("concord_proxy_backend_requests_total"))
                let (missing, _, _) = AdminServer.respond(method: .DELETE, uri: "/backends/127.0.0.1:1", body: "", balancer: server.balancer, metrics: server.metrics)
                #expect(missing == .notFound)
            }
        }
    }

    @Test func activeHealthChecksTakeABackendOutAndBringItBack() async throws {
        try await ProxyHarness.withBackends(["a", "b"]) { backends in
            var config = try ProxyHarness.configuration(backends, balance: .roundRobin)
            config.health = HealthCheckConfiguration(path: "/health", interval: 0.05, timeout: 5, rise: 1, fall: 1)
            try await ProxyHarness.withProxy(config) { server, port in
                backends[0].setHealthy(false)
                try await waitUntil { server.balancer.statuses().first { $0.id == backends[0].address }?.state == "down" }
                for _ in 0..<4 { #expect(try await RawClient.get(port: port).body == "b") }
                backends[0].setHealthy(true)
                try await waitUntil { server.balancer.statuses().allSatisfy { $0.state == "up" } }
            }
        }
    }
}

