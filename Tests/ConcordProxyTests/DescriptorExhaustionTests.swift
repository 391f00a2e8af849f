import ConcordSessionsTesting
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A proxy out of file descriptors: clients get 503 (or wait in the backlog), the healthy backend stays up — a
/// failure on this machine says nothing about it — and once descriptors are free again requests are answered. Before
/// 2026-12-02 the failed connects and health probes (EMFILE) marked the backend down, so the proxy went on answering
/// 503 after the clients had left, and the listener spun on failing accepts. A real `concord proxy` under `ulimit -n`.
@Suite(.serialized, .timeLimit(.minutes(2))) struct DescriptorExhaustionTests {
    @Test(.enabled(if: ConcordProxyProcess.executable != nil, "needs the concord executable beside the test binary"))
    func runningOutOfDescriptorsDoesNotTakeTheBackendDown() async throws {
        try await ProxyHarness.withBackends(["a"]) { backends in
            try await ConcordProxyProcess.with(
                ["--listen", "127.0.0.1:0", "--backend", backends[0].address, "--mode", "http", "--balance", "round-robin",
                 "--admin", "127.0.0.1:0", "--log-level", "notice"],
                openFileLimit: 40
            ) { proxy in
                let adminPort = try #require(proxy.adminPort)
                #expect(proxy.log.contains("the open-file limit is 40, below the 20064 that maxConnections 10000 can use"), "\(proxy.log.suffix(1000))")

                // 60 clients connect and send nothing yet: each one accepted holds a descriptor until the proxy runs
                // out and its listener pauses. Then each sends a keep-alive GET, whose backend connect finds no descriptor.
                let clients = try Self.connect(60, port: proxy.port)
                defer { for fd in clients { close(fd) } }
                let paused = await eventually(timeout: .seconds(10)) { proxy.log.contains("accepting a client connection failed") }
                #expect(paused, "\(proxy.log.suffix(1500))")
                let statuses = await Self.statusCodes(sendingAGetOn: clients)
                #expect(statuses.contains(503), "no 503 while out of descriptors: \(statuses)\n\(proxy.log.suffix(1500))")
                for fd in clients { shutdown(fd, Int32(SHUT_RDWR)) }

                // Descriptors free again: answered at once by the same backend, which never went down.
                let answered = await eventually(timeout: .seconds(10)) { (try? await RawClient.get(port: proxy.port).status) == 200 }
                #expect(answered, "\(proxy.log.suffix(1500))")
                let backendsJSON = try await RawClient.get(port: adminPort, path: "/backends").body
                #expect(backendsJSON.contains("\"state\" : \"up\""), "\(backendsJSON)")
                #expect(!proxy.log.contains("is DOWN"), "\(proxy.log.suffix(1500))")
                #expect(proxy.log.contains("out of file descriptors (EMFILE"), "\(proxy.log.suffix(1500))")
                let metrics = try await RawClient.get(port: adminPort, path: "/metrics").body
                let local = metrics.firstMatch(of: /concord_proxy_local_resource_failures_total (\d+)/).flatMap { Int($0.1) }
                // Counted, and not in the millions: the listener pauses instead of spinning on failing accepts.
                #expect((local ?? 0) > 0 && (local ?? 0) < 5_000, "\(metrics)")
                #expect(metrics.contains("concord_proxy_backend_connect_failures_total{backend=\"\(backends[0].address)\"} 0"), "\(metrics)")
            }
        }
    }

    /// `--max-connections N`, the budget the open-file warning points to: the N+1st client is closed on accept, and
    /// with a budget the limit covers there is no warning.
    @Test(.enabled(if: ConcordProxyProcess.executable != nil, "needs the concord executable beside the test binary"))
    func maxConnectionsBoundsTheOpenClientConnections() async throws {
        try await ProxyHarness.withBackends(["a"]) { backends in
            try await ConcordProxyProcess.with(
                ["--listen", "127.0.0.1:0", "--backend", backends[0].address, "--max-connections", "2", "--log-level", "notice"],
                openFileLimit: 100  // above 2 × 2 + 64
            ) { proxy in
                #expect(!proxy.log.contains("open-file limit"), "\(proxy.log.suffix(1000))")
                let clients = try Self.connect(3, port: proxy.port)
                defer { for fd in clients { close(fd) } }
                let statuses = await Self.statusCodes(sendingAGetOn: clients)
                #expect(statuses == [-1, 200, 200], "two answered, the third closed on accept: \(statuses)")
            }
        }
    }

    struct ConnectFailed: Error { let errno: Int32 }

    /// `count` connections to the proxy (loopback connects complete in the kernel's backlog, accepted or not).
    static func connect(_ count: Int, port: Int) throws(ConnectFailed) -> [Int32] {
        var sockets: [Int32] = []
        for _ in 0..<count {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { break }
            sockets.append(fd)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            address.sin_port = UInt16(port).bigEndian
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard connected == 0 else {
                let failure = errno
                for fd in sockets { close(fd) }
                throw ConnectFailed(errno: failure)
            }
        }
        return sockets
    }

    /// Sends a keep-alive GET on each connection and returns the status codes that arrive while all of them stay
    /// open (a client still in the proxy's backlog gets none): until each has one, 5 s passed, or none came for 1 s.
    static func statusCodes(sendingAGetOn sockets: [Int32]) async -> [Int] {
        let request = Array("GET / HTTP/1.1\r\nHost: t\r\n\r\n".utf8)
        for fd in sockets { _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } }
        var statuses: [Int] = []
        var waiting = sockets.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        let deadline = ContinuousClock.now + .seconds(5)
        var lastAnswer = ContinuousClock.now
        while !waiting.isEmpty && ContinuousClock.now < deadline && ContinuousClock.now - lastAnswer < .seconds(1) {
            // Never block in poll: this runs on the cooperative pool, one thread per core, which other tests share.
            guard poll(&waiting, nfds_t(waiting.count), 0) > 0 else {
                try? await Task.sleep(for: .milliseconds(10))
                continue
            }
            lastAnswer = ContinuousClock.now
            for entry in waiting where entry.revents != 0 {
                var buffer = [UInt8](repeating: 0, count: 512)
                let read = recv(entry.fd, &buffer, buffer.count, 0)
                let line = read > 0 ? String(decoding: buffer[..<read], as: UTF8.self) : ""
                statuses.append(line.hasPrefix("HTTP/1.1 ") ? Int(line.dropFirst(9).prefix(3)) ?? -1 : -1)
            }
            waiting = waiting.filter { $0.revents == 0 }
        }
        return statuses.sorted()
    }
}
