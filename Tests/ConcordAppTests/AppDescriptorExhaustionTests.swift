import ConcordLab
import ConcordSessionsTesting
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A `concord app` out of file descriptors: before 2026-12-02 its listener spun on failing accepts (NIO's accept
/// backoff delays the next read but leaves the socket in epoll) at 100 % CPU for as long as the clients stayed; now
/// it pauses, counts and logs, and answers once descriptors are free. A real node under `ulimit -n`.
@Suite(.serialized, .timeLimit(.minutes(2))) struct AppDescriptorExhaustionTests {
    @Test func anAppOutOfDescriptorsPausesItsListenerInsteadOfSpinning() async throws {
        try await AppNode.with(["--log-level", "info"], openFileLimit: 40) { node, port in
            // 60 clients that send nothing: each one accepted holds a descriptor, until there is none left.
            let clients = try HeldConnections.open(60, port: port)
            defer { for fd in clients { close(fd) } }
            let paused = await eventually(timeout: .seconds(10)) { node.logTail(40).contains("accepting a client connection failed") }
            #expect(paused, "\(node.logTail(40))")
            #expect(node.logTail(40).contains("out of file descriptors (EMFILE"), "\(node.logTail(40))")
            #expect(!node.logTail(40).contains("maxConnections"), "the proxy's remedy is not the app's")

            // Spinning took a whole core (≈ 1.5 s of CPU in this window, less on a busy machine); paused, next to none.
            let before = try #require(Self.cpuSeconds(pid: node.pid))
            try await Task.sleep(for: .milliseconds(1500))
            let used = try #require(Self.cpuSeconds(pid: node.pid)) - before
            #expect(used < 0.3, "the app used \(used) s of CPU in 1.5 s while out of descriptors")

            for fd in clients { shutdown(fd, Int32(SHUT_RDWR)) }
            let answered = await eventually(timeout: .seconds(10)) {
                (try? await LabHTTPConnection.oneShot(port: port, path: "/ready").status) == 200
            }
            #expect(answered, "running: \(node.isRunning), exit status: \(node.exitStatus.map(String.init) ?? "-"); log:\n\(node.logTail(60))")
            try #require(answered)
            let metrics = try await LabHTTPConnection.oneShot(port: port, path: "/metrics").bodyText
            let counted = metrics.firstMatch(of: /concord_app_local_resource_failures_total\{[^}]*\} (\d+)/).flatMap { Int($0.1) }
            #expect((counted ?? 0) > 0 && (counted ?? 0) < 5_000, "\(metrics)")
        }
    }

    /// User plus system CPU time of a process so far, from /proc.
    static func cpuSeconds(pid: pid_t) -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let afterName = stat.lastIndex(of: ")") else { return nil }
        // Fields after "(comm)": state is field 3, utime 14, stime 15.
        let fields = stat[stat.index(after: afterName)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}
