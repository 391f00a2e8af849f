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
                let clients = try HeldConnections.open(60, port: proxy.port)
                defer { for fd in clients { close(fd) } }
                let paused = await eventually(timeout: .seconds(10)) { proxy.log.contains("accepting a client connection failed") }
                #expect(paused, "\(proxy.log.suffix(1500))")
                let statuses = await HeldConnections.statusCodes(sendingAGetOn: clients)
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
                let clients = try HeldConnections.open(3, port: proxy.port)
                defer { for fd in clients { close(fd) } }
                let statuses = await HeldConnections.statusCodes(sendingAGetOn: clients)
                #expect(statuses == [-1, 200, 200], "two answered, the third closed on accept: \(statuses)")
            }
        }
    }
}
