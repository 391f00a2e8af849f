import ConcordLab
import Foundation
import Testing

/// A `concord proxy` process for a test: the executable built beside the test binary, run as a ``LabChild`` (its
/// own reaper thread; Foundation's `Process` missed exits under the suite's load, and its blocking wait for one
/// held a cooperative thread for seconds), its output in a temporary log file, ready once it logged its listening
/// line. It stops if the test process dies (`CONCORD_PARENT_PID`).
struct ConcordProxyProcess {
    /// The `concord` executable built beside this test binary (`swift build --build-tests` builds both).
    static let executable: String? = {
        let directory = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        let path = directory.appendingPathComponent("concord").path
        return FileManager.default.isExecutableFile(atPath: path) ? path : nil
    }()

    let child: LabChild
    let port: Int
    /// The admin listener's port, when `--admin` was given.
    let adminPort: Int?

    /// Runs `concord proxy arguments…` for `body` and stops it afterwards (SIGTERM, SIGKILL after 5 s), also on
    /// failure. `openFileLimit`: run it under `ulimit -n` (soft and hard), so that it cannot raise the limit itself.
    static func with<T>(_ arguments: [String], openFileLimit: Int? = nil, _ body: (ConcordProxyProcess) async throws -> T) async throws -> T {
        let executable = try #require(Self.executable, "no concord executable beside the test binary: swift build --build-tests")
        let logPath = FileManager.default.temporaryDirectory.appendingPathComponent("concord-proxy-\(UUID().uuidString).log").path
        defer { try? FileManager.default.removeItem(atPath: logPath) }
        let child = try LabChild.spawn(
            name: "proxy", executable: executable, arguments: ["proxy"] + arguments,
            environment: ["CONCORD_PARENT_PID": String(getpid())], logPath: logPath, openFileLimit: openFileLimit)
        do {
            let process = try await ready(child)
            let result = try await body(process)
            await child.stop()
            return result
        } catch {
            await child.stop()
            throw error
        }
    }

    /// Waits (30 s at most) for the ready line and reads the ports from it.
    private static func ready(_ child: LabChild) async throws -> ConcordProxyProcess {
        let deadline = ContinuousClock.now.advanced(by: .seconds(30))
        while ContinuousClock.now < deadline && child.isRunning {
            let text = (try? String(contentsOfFile: child.logPath, encoding: .utf8)) ?? ""
            if let match = text.firstMatch(of: /listening on 127\.0\.0\.1:(\d+)/), let port = Int(match.1) {
                let admin = text.firstMatch(of: /admin and \/metrics on 127\.0\.0\.1:(\d+)/).flatMap { Int($0.1) }
                return ConcordProxyProcess(child: child, port: port, adminPort: admin)
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        Issue.record("concord proxy not ready within 30 s:\n\(child.logTail(30))")
        throw CancellationError()
    }

    /// What the proxy logged so far.
    var log: String { (try? String(contentsOfFile: child.logPath, encoding: .utf8)) ?? "" }
}
