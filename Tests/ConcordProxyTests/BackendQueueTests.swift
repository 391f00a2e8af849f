import ConcordSessionsTesting
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing

@testable import ConcordProxy

/// `limits.maxRequestsPerBackend` through a real proxy: a backend never holds more than its limit, the rest wait in
/// the proxy in arrival order, a wait has a timeout (503), and waiters of a backend that goes down go to their
/// key's next node.
@Suite(.serialized, .timeLimit(.minutes(2))) struct BackendQueueTests {
    func withGatedBackends<T>(_ names: [String], _ body: ([TestGatedBackend]) async throws -> T) async throws -> T {
        try await ProxyHarness.withServers(names, start: { try await TestGatedBackend.start(name: $0) }, body)
    }

    func configuration(_ backends: [any StoppableTestServer], mode: ProxyMode = .http, balance: BalanceStrategy = .roundRobin,
                       key: String = "ip", limit: Int, queueTimeout: Double = 5) throws -> ProxyConfiguration {
        var c = ProxyConfiguration(
            backends: backends.map { HostPort(host: "127.0.0.1", port: $0.port) }, mode: mode, balance: balance,
            key: try KeyChain(parsing: key))
        c.health = ProxyHarness.quietHealth
        c.limits.maxRequestsPerBackend = limit
        c.limits.queueTimeout = queueTimeout
        return c
    }

    func metric(_ server: ProxyServer, _ name: String) -> String? {
        server.metrics.exposition().split(separator: "\n").first { $0.hasPrefix(name + " ") }.map(String.init)
    }

    @Test func aBackendGetsAtMostItsLimitAndTheRestWaitInTheProxy() async throws {
        try await withGatedBackends(["a"]) { backends in
            let a = backends[0]
            try await ProxyHarness.withProxy(try configuration(backends, limit: 2)) { server, port in
                try await withThrowingTaskGroup(of: RawClient.Response.self) { group in
                    for _ in 0..<5 { group.addTask { try await RawClient.get(port: port) } }
                    try await waitUntil { a.held == 2 && server.balancer.statuses()[0].queued == 3 }
                    try await Task.sleep(for: .milliseconds(200))
                    #expect(a.arrived == 2, "only the limit's worth reached the backend")
                    // One answer lets exactly one waiter through.
                    a.release(1)
                    try await waitUntil { a.arrived == 3 && server.balancer.statuses()[0].queued == 2 }
                    #expect(a.held == 2)
                    a.openGate()
                    var statuses: [Int?] = []
                    for try await response in group { statuses.append(response.status) }
                    #expect(statuses == Array(repeating: 200, count: 5))
                }
                #expect(a.mostHeldAtOnce == 2)
                #expect(metric(server, "concord_proxy_queued_total") == "concord_proxy_queued_total 3")
                let status = server.balancer.statuses()[0]
                #expect(status.queued == 0 && status.active == 0)
            }
        }
    }

    @Test func manyClientsOnBothEventLoopsNeverPutMoreThanTheLimitOnTheBackend() async throws {
        // Each request is held 5 ms; 160 keep-alive requests from 32 clients go through a limit of 3, the waiters'
        // slots handed over between the proxy's event loops.
        try await ProxyHarness.withServers(["a"], start: { try await TestGatedBackend.start(name: $0, answerAfter: .milliseconds(5)) }) { backends in
            let a = backends[0]
            try await ProxyHarness.withProxy(try configuration(backends, limit: 3, queueTimeout: 30)) { server, port in
                let request = "GET / HTTP/1.1\r\nHost: t\r\n\r\n"
                let answered = try await withThrowingTaskGroup(of: Int.self) { group in
                    for _ in 0..<32 {
                        group.addTask {
                            let last = request.replacingOccurrences(of: "\r\n\r\n", with: "\r\nConnection: close\r\n\r\n")
                            let response = try await RawClient.exchange(port: port, Array(repeating: request, count: 4) + [last],
                                                                        timeout: .seconds(30))
                            return response.text.components(separatedBy: "HTTP/1.1 200 OK").count - 1
                        }
                    }
                    return try await group.reduce(0, +)
                }
                #expect(answered == 160)
                #expect(a.arrived == 160)
                #expect(a.mostHeldAtOnce <= 3, "the backend held \(a.mostHeldAtOnce) at once")
                #expect(a.mostHeldAtOnce == 3, "the limit was never reached: the test did not test it")
                let status = server.balancer.statuses()[0]
                #expect(status.queued == 0 && status.active == 0)
                let pick = try #require(server.balancer.pickRoundRobin())
                server.balancer.release(pick)
                #expect(pick.handle.admission.admitted == 0, "every slot was given back")
            }
        }
    }

    @Test func aRequestThatWaitsPastTheQueueTimeoutGets503() async throws {
        try await withGatedBackends(["a"]) { backends in
            let a = backends[0]
            try await ProxyHarness.withProxy(try configuration(backends, limit: 1, queueTimeout: 0.3)) { server, port in
                let first = Task { try await RawClient.get(port: port) }
                try await waitUntil { a.held == 1 }
                let start = ContinuousClock.now
                let second = try await RawClient.get(port: port)
                let waited = ContinuousClock.now - start
                #expect(second.status == 503)
                #expect(waited >= .milliseconds(250), "answered after \(waited), before the 0.3-s queue timeout")
                #expect(a.arrived == 1, "the timed-out request never reached the backend")
                a.openGate()
                #expect(try await first.value.status == 200)
                #expect(metric(server, "concord_proxy_queue_timeouts_total") == "concord_proxy_queue_timeouts_total 1")
                #expect(server.balancer.statuses()[0].queued == 0)
                // The slot the first request held is free again: the next request goes straight through.
                #expect(try await RawClient.get(port: port).status == 200)
            }
        }
    }

    @Test func aFullQueueTurnsTheNextRequestAwayAtOnce() async throws {
        try await withGatedBackends(["a"]) { backends in
            let a = backends[0]
            var config = try configuration(backends, limit: 1, queueTimeout: 30)
            config.limits.maxQueuePerBackend = 1
            try await ProxyHarness.withProxy(config) { server, port in
                let first = Task { try await RawClient.get(port: port) }
                try await waitUntil { a.held == 1 }
                let second = Task { try await RawClient.get(port: port) }
                try await waitUntil { server.balancer.statuses()[0].queued == 1 }
                // The queue holds its one waiter: the next request is answered now, not after the 30-s queue timeout.
                let third = try await RawClient.get(port: port)
                #expect(third.status == 503)
                #expect(metric(server, "concord_proxy_queue_full_total") == "concord_proxy_queue_full_total 1")
                a.openGate()
                #expect(try await first.value.status == 200)
                #expect(try await second.value.status == 200)
                #expect(a.arrived == 2)
            }
        }
    }

    @Test func aClientThatGivesUpWhileWaitingLeavesTheQueueAndHoldsNoSlot() async throws {
        try await withGatedBackends(["a"]) { backends in
            let a = backends[0]
            try await ProxyHarness.withProxy(try configuration(backends, limit: 1)) { server, port in
                let first = Task { try await RawClient.get(port: port) }
                try await waitUntil { a.held == 1 }
                // Three clients queue, then hang up (a reset: a plain close reads as a half-close, whose request
                // the proxy still answers) before the backend is free.
                var leaving: [any Channel] = []
                for _ in 0..<3 {
                    let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                        .connect(host: "127.0.0.1", port: port).get()
                    try await (channel as! any SocketOptionProvider).setSoLinger(linger(l_onoff: 1, l_linger: 0)).get()
                    try await channel.writeAndFlush(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: t\r\n\r\n"))
                    leaving.append(channel)
                }
                try await waitUntil { server.balancer.statuses()[0].queued == 3 }
                for channel in leaving { try await channel.close() }
                try await waitUntil(timeout: .seconds(3)) { server.balancer.statuses()[0].queued == 0 }
                a.release(1)
                #expect(try await first.value.status == 200)
                // No slot went to a client that had left: the next request is admitted at once.
                let next = Task { try await RawClient.get(port: port) }
                try await waitUntil { a.held == 1 }
                #expect(a.arrived == 2, "only the two answered requests reached the backend")
                a.openGate()
                #expect(try await next.value.status == 200)
                let handle = try #require(server.balancer.pick(keyHash: 1))
                server.balancer.release(handle)
                #expect(handle.handle.admission.admitted == 0, "every slot was given back")
            }
        }
    }

    @Test(arguments: [false, true])
    func aClientThatHalfClosesWhileQueuedIsAnsweredUnlessAbortQueuedOnClose(_ abort: Bool) async throws {
        try await withGatedBackends(["a"]) { backends in
            let a = backends[0]
            var config = try configuration(backends, limit: 1, queueTimeout: 30)
            config.limits.abortQueuedOnClose = abort
            try await ProxyHarness.withProxy(config) { server, port in
                let first = Task { try await RawClient.get(port: port) }
                try await waitUntil { a.held == 1 }
                // The request, then EOF (what a browser's stop button looks like to the proxy).
                let second = Task {
                    try await RawClient.exchange(port: port, ["GET / HTTP/1.1\r\nHost: t\r\n\r\n"], halfClose: true, timeout: .seconds(10))
                }
                if abort {
                    let dropped = try await second.value
                    #expect(dropped.closedByPeer && dropped.text.isEmpty, "dropped without an answer: \(dropped.text)")
                    #expect(metric(server, "concord_proxy_queued_total") == "concord_proxy_queued_total 1", "it had been queued")
                    #expect(server.balancer.statuses()[0].queued == 0)
                    #expect(metric(server, "concord_proxy_queue_aborts_total") == "concord_proxy_queue_aborts_total 1")
                    a.openGate()
                    #expect(try await first.value.status == 200)
                    #expect(a.arrived == 1, "the dropped request never reached the backend")
                } else {
                    try await waitUntil { server.balancer.statuses()[0].queued == 1 }
                    try await Task.sleep(for: .milliseconds(200))
                    #expect(server.balancer.statuses()[0].queued == 1, "a half-closed client keeps its place")
                    a.openGate()
                    #expect(try await first.value.status == 200)
                    #expect(try await second.value.status == 200)
                    #expect(metric(server, "concord_proxy_queue_aborts_total") == "concord_proxy_queue_aborts_total 0")
                }
            }
        }
    }

    @Test(arguments: ["goes down", "is removed"])
    func waitersOfABackendThatGoesDownOrLeavesGoToTheirKeysNextNode(_ how: String) async throws {
        try await withGatedBackends(["a", "b"]) { backends in
            let config = try configuration(backends, balance: .hash, key: "header:x-user", limit: 1)
            try await ProxyHarness.withProxy(config) { server, port in
                let user = ["x-user": "u1"]
                let first = Task { try await RawClient.get(port: port, headers: user) }
                try await waitUntil { backends.map(\.held).reduce(0, +) == 1 }
                let owner = backends.first { $0.held == 1 }!
                let other = backends.first { $0 !== owner }!
                other.openGate()
                let second = Task { try await RawClient.get(port: port, headers: user) }
                try await waitUntil { server.balancer.statuses().first { $0.id == owner.address }?.queued == 1 }
                // An active probe fails (fall 1) or the admin API removes it: its waiter goes to the key's next node.
                if how == "goes down" {
                    let down = server.balancer.backends.first { $0.id == owner.address }!
                    server.balancer.recordProbe(down, success: false, detail: "test probe failed")
                } else {
                    try server.balancer.remove(id: owner.address)
                }
                let redispatched = try await second.value
                #expect(redispatched.status == 200)
                #expect(redispatched.body == other.name)
                #expect(owner.arrived == 1, "the waiter never reached the backend that went down")
                owner.openGate()
                #expect(try await first.value.body == owner.name, "the request it already had still finishes")
                #expect(metric(server, "concord_proxy_redispatched_total") == "concord_proxy_redispatched_total 1")
            }
        }
    }

    @Test func aWebSocketTunnelGivesItsSlotBack() async throws {
        let heads = NIOLockedValueBox<[String]>([])
        try await ProxyHarness.withServers(["w"], start: { try await HTTPProxyUpgradeTests.switchingBackend($0, heads: heads) }) { backends in
            try await ProxyHarness.withProxy(try configuration(backends, limit: 1, queueTimeout: 1)) { server, port in
                let tunnelBytes = NIOLockedValueBox(ByteBuffer())
                // The tunnel stays open for 3 s (the client's time limit) …
                let tunnel = Task {
                    try await RawClient.exchange(port: port, [HTTPProxyUpgradeTests.upgradeRequest()], timeout: .seconds(3), collected: tunnelBytes)
                }
                try await waitUntil { tunnelBytes.withLockedValue { String(buffer: $0) }.hasSuffix("welcome-w|") }
                // … and a plain request meanwhile gets the backend's only slot at once, not a 503 after the 1-s wait.
                let plain = try await RawClient.get(port: port)
                #expect(plain.status == 200 && plain.body == "w")
                #expect(metric(server, "concord_proxy_queued_total") == "concord_proxy_queued_total 0")
                _ = try await tunnel.value
            }
        }
    }

    /// An L4 proxy with the per-backend queue (`limit`, `queueTimeout`) on `engine`, in front of echo backends.
    private func withL4Queue(engine: TCPEngine, _ names: [String], balance: BalanceStrategy = .roundRobin, limit: Int,
                             queueTimeout: Double = 5, configure: (inout ProxyConfiguration) -> Void = { _ in },
                             _ body: (ProxyServer, Int, [TestEchoBackend]) async throws -> Void) async throws {
        try await ProxyHarness.withServers(names, start: { try await TestEchoBackend.start(name: $0) }) { echoes in
            var config = try configuration(echoes, mode: .tcp, balance: balance, limit: limit, queueTimeout: queueTimeout)
            config.tcpEngine = engine
            configure(&config)
            try await ProxyHarness.withProxy(config) { server, port in
                #expect(server.tcpEngineInUse == engine)
                try await body(server, port, echoes)
            }
        }
    }

    /// L4 runs on both engines (the direct one queues on its own loops since 2026-12-03; it fell back to nio before).
    @Test(arguments: TCPEngine.allCases)
    func inTCPModeAWaitingConnectionThatSendsEOFIsDroppedWithAbortQueuedOnClose(engine: TCPEngine) async throws {
        try await withL4Queue(engine: engine, ["e0"], limit: 1, queueTimeout: 30, configure: { $0.limits.abortQueuedOnClose = true }) { server, port, echoes in
            let firstBytes = NIOLockedValueBox(ByteBuffer())
            let first = Task { try await RawClient.exchange(port: port, ["a"], timeout: .seconds(3), collected: firstBytes) }
            try await waitUntil { firstBytes.withLockedValue { String(buffer: $0) } == "e0:a" }
            let start = ContinuousClock.now
            let dropped = try await RawClient.exchange(port: port, ["b"], halfClose: true, timeout: .seconds(10))
            #expect(dropped.closedByPeer && dropped.text.isEmpty, "\(dropped.text)")
            #expect(ContinuousClock.now - start < .seconds(2), "closed while the first connection still held the slot")
            #expect(metric(server, "concord_proxy_queue_aborts_total") == "concord_proxy_queue_aborts_total 1")
            _ = try await first.value
        }
    }

    @Test(arguments: TCPEngine.allCases)
    func inTCPModeAConnectionWaitsUntilTheBackendsSlotIsFree(engine: TCPEngine) async throws {
        try await withL4Queue(engine: engine, ["e0"], limit: 1) { server, port, echoes in
            let firstBytes = NIOLockedValueBox(ByteBuffer())
            // The first connection stays open for 1.5 s (the client's time limit), then closes.
            let first = Task { try await RawClient.exchange(port: port, ["a"], timeout: .milliseconds(1_500), collected: firstBytes) }
            try await waitUntil { firstBytes.withLockedValue { String(buffer: $0) } == "e0:a" }
            let secondBytes = NIOLockedValueBox(ByteBuffer())
            let start = ContinuousClock.now
            let second = Task { try await RawClient.exchange(port: port, ["b"], halfClose: true, timeout: .seconds(10), collected: secondBytes) }
            try await waitUntil { server.balancer.statuses()[0].queued == 1 }
            #expect(secondBytes.withLockedValue { $0.readableBytes } == 0, "the second connection reached the backend while the first held its slot")
            _ = try await first.value
            let response = try await second.value
            #expect(response.text == "e0:b|bye")
            #expect(ContinuousClock.now - start >= .milliseconds(1_000), "the second connection did not wait for the first")
            #expect(server.balancer.statuses()[0].queued == 0)
        }
    }

    /// L4 with one slot and a queue of one: a third connection is closed at once (queue full), the waiting one is
    /// closed after queueTimeout without reaching the backend, and once the slot holder closes a new connection goes
    /// through; the slot and the queue are empty after.
    @Test(arguments: TCPEngine.allCases)
    func inTCPModeAFullQueueAndAWaitPastItsTimeoutCloseTheConnection(engine: TCPEngine) async throws {
        try await withL4Queue(engine: engine, ["e0"], limit: 1, queueTimeout: 1, configure: { $0.limits.maxQueuePerBackend = 1 }) { server, port, echoes in
            let holderBytes = NIOLockedValueBox(ByteBuffer())
            let holder = Task { try await RawClient.exchange(port: port, ["a"], timeout: .seconds(3), collected: holderBytes) }
            try await waitUntil { holderBytes.withLockedValue { String(buffer: $0) } == "e0:a" }
            let waiting = Task { try await RawClient.exchange(port: port, ["b"], timeout: .seconds(10)) }
            try await waitUntil { server.balancer.statuses()[0].queued == 1 }
            let started = ContinuousClock.now
            let turnedAway = try await RawClient.exchange(port: port, ["c"], timeout: .seconds(10))
            #expect(turnedAway.closedByPeer && turnedAway.text.isEmpty, "\(turnedAway.text)")
            #expect(ContinuousClock.now - started < .milliseconds(900), "the third connection waited")
            let timedOut = try await waiting.value
            #expect(timedOut.closedByPeer && timedOut.text.isEmpty, "\(timedOut.text)")
            #expect(metric(server, "concord_proxy_queue_full_total") == "concord_proxy_queue_full_total 1")
            #expect(metric(server, "concord_proxy_queue_timeouts_total") == "concord_proxy_queue_timeouts_total 1")
            _ = try await holder.value
            let after = try await RawClient.exchange(port: port, ["d"], halfClose: true, timeout: .seconds(5))
            #expect(after.text == "e0:d|bye")
            // A slot never given back would have made `after` wait, then time out (the limit is 1).
            try await waitUntil { server.balancer.statuses()[0].queued == 0 && server.openClientConnections == 0 }
            #expect(server.balancer.statuses()[0].active == 0)
        }
    }

    /// L4: a connection waiting for a backend that goes down is redispatched to its key's next node.
    @Test(arguments: TCPEngine.allCases)
    func inTCPModeTheWaiterOfABackendThatGoesDownGoesToTheNextNode(engine: TCPEngine) async throws {
        try await withL4Queue(engine: engine, ["e0", "e1"], balance: .hash, limit: 1, queueTimeout: 30) { server, port, echoes in
            let holderBytes = NIOLockedValueBox(ByteBuffer())
            let holder = Task { try await RawClient.exchange(port: port, ["a"], timeout: .seconds(3), collected: holderBytes) }
            try await waitUntil { holderBytes.withLockedValue { String(buffer: $0) }.hasSuffix(":a") }
            let ownerName = String(holderBytes.withLockedValue { String(buffer: $0) }.prefix(2))
            let owner = try #require(echoes.first { $0.name == ownerName })
            let waiting = Task { try await RawClient.exchange(port: port, ["b"], halfClose: true, timeout: .seconds(10)) }
            try await waitUntil { server.balancer.statuses().first { $0.id == owner.address }?.queued == 1 }
            let down = try #require(server.balancer.backends.first { $0.id == owner.address })
            server.balancer.recordProbe(down, success: false, detail: "test probe failed")
            let redispatched = try await waiting.value
            let other = try #require(echoes.first { $0.name != ownerName })
            #expect(redispatched.text == "\(other.name):b|bye")
            #expect(metric(server, "concord_proxy_redispatched_total") == "concord_proxy_redispatched_total 1")
            _ = try await holder.value
        }
    }

    /// Behind a load balancer (`acceptProxyProtocol`), a client whose header, bytes and EOF come together, and which
    /// must wait, is dropped at once with `abortQueuedOnClose`: the direct engine saw that EOF while reading the
    /// header and, once queued, waited for a new edge that never came (until the queue timeout; a review).
    @Test(arguments: TCPEngine.allCases)
    func inTCPModeAnEOFThatCameWithThePROXYHeaderAbortsTheWait(engine: TCPEngine) async throws {
        try await withL4Queue(engine: engine, ["e0"], limit: 1, queueTimeout: 30, configure: {
            $0.acceptProxyProtocol = true
            $0.limits.abortQueuedOnClose = true
        }) { server, port, _ in
            let holderBytes = NIOLockedValueBox(ByteBuffer())
            let holder = Task {
                try await RawClient.exchange(port: port, ["PROXY TCP4 203.0.113.1 10.0.0.1 1111 22\r\na"], timeout: .seconds(3),
                                             collected: holderBytes)
            }
            try await waitUntil { holderBytes.withLockedValue { String(buffer: $0) } == "e0:a" }
            for attempt in 0..<3 {
                // Connect, send and shut down in one go from a blocking socket: all of it is in the kernel before the
                // proxy accepts (RawClient's NIO writes left the EOF for a later edge).
                let start = ContinuousClock.now
                let fd = try #require(try HeldConnections.open(1, port: port).first)
                defer { close(fd) }
                let header = Array("PROXY TCP4 203.0.113.2 10.0.0.1 2222 22\r\nb".utf8)
                _ = header.withUnsafeBytes { send(fd, $0.baseAddress!, $0.count, Int32(MSG_NOSIGNAL)) }
                shutdown(fd, Int32(SHUT_WR))
                var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                var byte: UInt8 = 0
                let closed = poll(&poller, 1, 10_000) == 1 && recv(fd, &byte, 1, 0) <= 0
                #expect(closed, "attempt \(attempt): not closed within 10 s")
                #expect(ContinuousClock.now - start < .seconds(2), "attempt \(attempt): it waited")
            }
            #expect(metric(server, "concord_proxy_queue_aborts_total") == "concord_proxy_queue_aborts_total 3")
            _ = try await holder.value
        }
    }
}
