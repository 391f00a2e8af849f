import ConcordSessionsTesting
import ConcordTLSTestSupport
import Foundation
import Testing

@testable import ConcordProxy

@Suite(.serialized, .timeLimit(.minutes(3))) struct ProxyReloadTests {
    @Test func aReloadAppliesRunTimeSettingsAndKeepsListenerSettings() throws {
        let current = ProxyConfiguration(
            listen: HostPort(host: "127.0.0.1", port: 8080), backends: [HostPort(host: "127.0.0.1", port: 9001)])
        var new = current
        new.listen = HostPort(host: "127.0.0.1", port: 9090)
        new.mode = .tcp
        new.backends = [HostPort(host: "127.0.0.1", port: 9002)]
        new.health.fall = 5
        new.limits.maxBodyBytes = 10
        new.cpuAffinity = .off
        new.eventLoops = 1
        let plan = ProxyReload(current: current, new: new)
        #expect(plan.applied == [.backends, .health, .limits])
        #expect(plan.needsRestart == [.listen, .mode, .cpuAffinity, .eventLoops])
        #expect(plan.configuration.listen == current.listen && plan.configuration.mode == .http)
        #expect(plan.configuration.cpuAffinity == .auto && plan.configuration.eventLoops == nil)
        #expect(plan.configuration.backends == new.backends && plan.configuration.limits.maxBodyBytes == 10)
        #expect(ProxyReload(current: current, new: current).applied.isEmpty)
        var headers = current
        headers.acceptProxyProtocol = true
        headers.responseHeaders = ["X-Frame-Options: DENY"]
        #expect(ProxyReload(current: current, new: headers).applied == [.acceptProxyProtocol, .responseHeaders])
    }

    @Test func aDrainListMayNameOnlyBackends() throws {
        var configuration = ProxyConfiguration(backends: [HostPort(host: "127.0.0.1", port: 9001)])
        configuration.drain = [HostPort(host: "127.0.0.1", port: 9001)]
        try configuration.validate()
        configuration.drain = [HostPort(host: "127.0.0.1", port: 9009)]
        #expect(throws: ProxyError.self) { try configuration.validate() }
        let parsed = try ProxyConfiguration.parse(yaml: "backends: [127.0.0.1:9001]\ndrain: [127.0.0.1:9001]")
        #expect(parsed.drain == [HostPort(host: "127.0.0.1", port: 9001)])
    }

    @Test func reloadingTheFileMovesRealRequestsToTheNewBackends() async throws {
        try await ProxyHarness.withBackends(["a", "b", "c"]) { backends in
            let file = YAMLFile()
            defer { file.remove() }
            let (a, b, c) = (backends[0].address, backends[1].address, backends[2].address)
            try file.write("""
                listen: 127.0.0.1:0
                backends: [\(a)]
                key: cookie:sid
                health: { interval: 30, rise: 1, fall: 1 }
                """)
            let initial = try ProxyConfiguration.load(yamlFile: file.path)
            try await ProxyHarness.withProxy(initial, reload: { try ProxyConfiguration.load(yamlFile: file.path) }) { server, port in
                #expect(try await owners(0..<10, port: port) == ["a"])

                let next = """
                    listen: 127.0.0.1:1
                    backends: [\(b), \(c)]
                    key: cookie:sid
                    health: { interval: 30, rise: 1, fall: 2 }
                    limits: { maxBodyBytes: 100 }
                    """
                try file.write(next + "\ndrain: [\(c)]")
                let plan = try #require(try server.reload())
                #expect(plan.applied == [.backends, .health, .limits, .drain])
                #expect(plan.needsRestart == [.listen])
                #expect(server.configuration.listen.port == 0, "listen needs a restart and keeps its value")
                #expect(server.balancer.healthConfiguration.fall == 2)
                // b and c are pending until their first health check, made at once (the interval is 30 s).
                try await ProxyHarness.awaitFirstHealthChecks(server)
                // c drains and has no keys bound to it yet, so every key goes to b.
                #expect(try await owners(0..<20, port: port) == ["b"])
                // New connections get the new limits.
                #expect(try await RawClient.get(port: port, method: "POST", body: String(repeating: "x", count: 200)).status == 413)
                #expect(try await RawClient.get(port: port, method: "POST", body: "small").status == 200)

                // A file that does not parse changes nothing.
                try file.write("backends: [127.0.0.1:")
                #expect(throws: ProxyError.self) { try server.reload() }
                #expect(try await owners(0..<5, port: port) == ["b"])

                // Without the drain list c takes its keys.
                try file.write(next)
                let undrained = try #require(try server.reload())
                #expect(undrained.applied == [.drain])
                #expect(try await owners(0..<40, port: port) == ["b", "c"])
            }
        }
    }

    /// A reload that replaces every backend leaves none up to serve while the new ones wait for their first check:
    /// they serve at once (provisional) instead of every request getting 503 until a check passes — here the health
    /// path answers after 300 ms, so the first requests below come before any verdict (they got 503 before).
    @Test func aReloadThatReplacesEveryBackendServesWithoutWaitingForAHealthCheck() async throws {
        try await ProxyHarness.withBackends(["a", "b", "c"]) { backends in
            let file = YAMLFile()
            defer { file.remove() }
            func configuration(_ list: [TestBackend]) -> String {
                "listen: 127.0.0.1:0\nbackends: [\(list.map(\.address).joined(separator: ", "))]\nkey: cookie:sid\n"
                    + "health: { path: /slow, interval: 30, timeout: 2, rise: 2, fall: 3 }\n"
            }
            try file.write(configuration([backends[0]]))
            let initial = try ProxyConfiguration.load(yamlFile: file.path)
            try await ProxyHarness.withProxy(initial, reload: { try ProxyConfiguration.load(yamlFile: file.path) }) { server, port in
                #expect(try await owners(0..<5, port: port) == ["a"])
                try file.write(configuration([backends[1], backends[2]]))
                _ = try #require(try server.reload())
                let statuses = server.balancer.statuses()
                #expect(statuses.map(\.state) == ["up", "up"] && statuses.allSatisfy { $0.check == nil }, "\(statuses)")
                #expect(try await owners(0..<20, port: port) == ["b", "c"])
                // Both pass their first check and keep serving.
                try await waitUntil { server.balancer.statuses().allSatisfy { $0.check != nil } }
                #expect(server.balancer.statuses().map(\.state) == ["up", "up"])
                #expect(try await owners(0..<20, port: port) == ["b", "c"])
            }
        }
    }

    @Test(.enabled(if: ConcordProxyProcess.executable != nil, "needs the concord executable beside the test binary"))
    func sighupReloadsARunningConcordProxy() async throws {
        try await ProxyHarness.withBackends(["a", "b"]) { backends in
            let file = YAMLFile()
            defer { file.remove() }
            try file.write("listen: 127.0.0.1:0\nbackends: [\(backends[0].address)]\nhealth: { interval: 30 }\n")
            try await ConcordProxyProcess.with(["--config", file.path, "--log-level", "notice"]) { proxy in
                let bound = proxy.port
                func logText() -> String { proxy.log }
                #expect(try await owners(0..<5, port: bound) == ["a"])

                // --cpu-affinity auto, the default: every event-loop thread may run on exactly one CPU, its own while
                // there are enough CPUs.
                let loopCPUs = try eventLoopThreadCPUs(pid: proxy.child.pid)
                let allowed = EventLoopCPUAffinity.allowedCPUs()
                #expect(!loopCPUs.isEmpty && loopCPUs.allSatisfy { $0.count == 1 }, "\(loopCPUs)")
                if allowed.count >= loopCPUs.count { #expect(Set(loopCPUs.map(\.first)).count == loopCPUs.count, "\(loopCPUs)") }

                try file.write(
                    "listen: 127.0.0.1:0\nbackends: [\(backends[1].address)]\nhealth: { interval: 30 }\ncpuAffinity: off\n")
                #expect(kill(proxy.child.pid, SIGHUP) == 0)
                var moved = false
                let reloadDeadline = ContinuousClock.now.advanced(by: .seconds(15))
                while !moved && ContinuousClock.now < reloadDeadline {
                    moved = try await RawClient.get(port: bound).body == "b"
                    if !moved { try await Task.sleep(for: .milliseconds(20)) }
                }
                #expect(moved, "requests did not move to the new backend:\n\(logText().suffix(2000))")
                #expect(try await owners(0..<5, port: bound) == ["b"])
                #expect(logText().contains("reload: applied backends"))
                #expect(logText().contains("reload: cpuAffinity changed to off but takes effect only after a restart"))
                #expect(proxy.child.isRunning, "SIGHUP must not stop the proxy")
            }
        }
    }
}

extension ProxyReloadTests {
    /// A certificate given by flags alone (no --config) is renewed by SIGHUP: before, SIGHUP without --config only
    /// logged "nothing to reload" and the old certificate stayed in force.
    @Test(.enabled(if: ConcordProxyProcess.executable != nil, "needs the concord executable beside the test binary"))
    func sighupRenewsACertificateGivenByFlags() async throws {
        try await TestCertificate.withDirectory { directory in
            let installed = try TestCertificate.a.install(in: directory)
            try await ProxyHarness.withBackends(["a"]) { backends in
                let arguments = ["--listen", "127.0.0.1:0", "--backend", backends[0].address, "--balance", "round-robin", "--log-level", "notice",
                                 "--tls-certificate", installed.certificateChain, "--tls-key", installed.privateKey]
                try await ConcordProxyProcess.with(arguments) { proxy in
                    try TestCertificate.b.install(in: directory)
                    #expect(kill(proxy.child.pid, SIGHUP) == 0)
                    let renewed = "reload: TLS certificates read again from \(installed.certificateChain): new ones in force for new connections"
                    var seen = false
                    let deadline = ContinuousClock.now.advanced(by: .seconds(15))
                    while !seen && ContinuousClock.now < deadline {
                        seen = proxy.log.contains(renewed)
                        if !seen { try await Task.sleep(for: .milliseconds(20)) }
                    }
                    #expect(seen, "\(proxy.log.suffix(2000))")
                    #expect(try await RawClient.get(port: proxy.port, tls: try TestCertificate.b.clientContext()).status == 200)
                }
            }
        }
    }
}

/// The backends that answer `sid=u<n>` for each n in `users`.
private func owners(_ users: Range<Int>, port: Int) async throws -> Set<String> {
    var seen = Set<String>()
    for user in users {
        let response = try await RawClient.get(port: port, headers: ["Cookie": "sid=u\(user)"])
        #expect(response.status == 200, "\(response.text.prefix(300))")
        seen.insert(response.body)
    }
    return seen
}

/// The CPUs each `NIO-*` thread of process `pid` may run on (`Cpus_allowed_list` in /proc), one list per thread.
private func eventLoopThreadCPUs(pid: Int32) throws -> [[Int]] {
    let tasks = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")
    var result: [[Int]] = []
    for task in tasks {
        let name = (try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/comm", encoding: .utf8)) ?? ""
        guard name.hasPrefix("NIO-") else { continue }
        let status = try String(contentsOfFile: "/proc/\(pid)/task/\(task)/status", encoding: .utf8)
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed_list:") }) else { continue }
        var cpus: [Int] = []
        for part in line.dropFirst("Cpus_allowed_list:".count).trimmingCharacters(in: .whitespaces).split(separator: ",") {
            let bounds = part.split(separator: "-").compactMap { Int($0) }
            if let low = bounds.first { cpus += Array(low...(bounds.last ?? low)) }
        }
        result.append(cpus)
    }
    return result
}

/// A configuration file in the temporary directory.
private struct YAMLFile {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("concord-proxy-\(UUID().uuidString).yaml").path

    func write(_ text: String) throws { try text.write(toFile: path, atomically: true, encoding: .utf8) }
    func remove() { try? FileManager.default.removeItem(atPath: path) }
}
