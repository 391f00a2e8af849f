import NIOCore
import Testing

@testable import ConcordProxy

@Suite(.serialized, .timeLimit(.minutes(3))) struct TCPProxyTests {
    func withEchoBackends<T>(_ count: Int, _ body: ([TestEchoBackend]) async throws -> T) async throws -> T {
        try await ProxyHarness.withServers((0..<count).map { "e\($0)" }, start: { try await TestEchoBackend.start(name: $0) }, body)
    }

    func configuration(_ backends: [TestEchoBackend], balance: BalanceStrategy) throws -> ProxyConfiguration {
        var c = ProxyConfiguration(backends: try backends.map { try HostPort(parsing: $0.address) }, mode: .tcp, balance: balance)
        c.health = ProxyHarness.quietHealth
        return c
    }

    @Test func ipHashPinsAClientAndStreamsBothWaysWithHalfClose() async throws {
        try await withEchoBackends(3) { backends in
            try await ProxyHarness.withProxy(try configuration(backends, balance: .hash)) { _, port in
                var seen: Set<String> = []
                for _ in 0..<5 {
                    let response = try await RawClient.exchange(port: port, ["hello ", "world"], halfClose: true)
                    let name = String(response.text.prefix(while: { $0 != ":" }))
                    seen.insert(name)
                    // Echoed bytes, then the backend's answer to our half-close.
                    #expect(response.text == "\(name):hello world|bye")
                }
                #expect(seen.count == 1, "one client address, one backend")
            }
        }
    }

    @Test func aPairThatCarriesNoBytesForTheIdleTimeoutIsClosedAndAnActiveOneIsNot() async throws {
        try await withEchoBackends(1) { backends in
            var c = try configuration(backends, balance: .roundRobin)
            c.limits.tcpIdleTimeout = 2
            try await ProxyHarness.withProxy(c) { _, port in
                let start = ContinuousClock.now
                // Gaps of 0.3 s keep the pair alive (each byte re-arms the timeout); then it goes quiet and the
                // proxy closes it ≈ 2 s later, long before the client's own 30 s limit. (The timeout leaves a loaded
                // machine 1.7 s of slack between pieces.)
                let response = try await RawClient.exchange(port: port, ["a", "b", "c", "d"], pause: .milliseconds(300), timeout: .seconds(30))
                let elapsed = ContinuousClock.now - start
                #expect(response.text == "e0:abcd", "every piece crossed while the pair was active")
                #expect(elapsed >= .milliseconds(2_800), "closed at \(elapsed), before 0.9 s of pauses + 2 s idle")
                #expect(elapsed < .seconds(20), "closed at \(elapsed): the idle timeout did not fire")
            }
        }
    }

    @Test func roundRobinAndFailoverToTheNextNode() async throws {
        try await withEchoBackends(3) { backends in
            try await ProxyHarness.withProxy(try configuration(backends, balance: .roundRobin)) { _, port in
                var names: [String] = []
                for _ in 0..<6 {
                    let response = try await RawClient.exchange(port: port, ["x"], halfClose: true)
                    names.append(String(response.text.prefix(while: { $0 != ":" })))
                }
                #expect(Set(names) == ["e0", "e1", "e2"])
                let hold = try await backends[0].stopHoldingPort()
                defer { hold.close() }
                for attempt in 0..<4 {
                    let response = try await RawClient.exchange(port: port, ["y"], halfClose: true)
                    #expect(response.text.hasSuffix(":y|bye"), "attempt \(attempt): \(response.text)")
                    #expect(!response.text.hasPrefix("e0"))
                }
            }
        }
    }

    @Test func proxyProtocolHeaders() {
        var v1 = ByteBufferAllocator().buffer(capacity: 64)
        let src = try! SocketAddress(ipAddress: "10.0.0.1", port: 1234)
        let dst = try! SocketAddress(ipAddress: "10.0.0.2", port: 80)
        ProxyProtocolHeader.encode(.v1, source: src, destination: dst, into: &v1)
        #expect(String(buffer: v1) == "PROXY TCP4 10.0.0.1 10.0.0.2 1234 80\r\n")
        var v2 = ByteBufferAllocator().buffer(capacity: 64)
        ProxyProtocolHeader.encode(.v2, source: src, destination: dst, into: &v2)
        let bytes = Array(v2.readableBytesView)
        #expect(Array(bytes.prefix(12)) == ProxyProtocolHeader.v2Signature)
        #expect(bytes[12] == 0x21 && bytes[13] == 0x11)
        #expect(bytes.count == 16 + 12)
        #expect(Array(bytes[16..<20]) == [10, 0, 0, 1])
    }
}

