import ConcordSessions
import ConcordLab
import ConcordSessionsTesting
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A real `concord app` process for tests of what only a process shows (signals, shutdown, exit status).
enum AppNode {
    /// Starts `concord app --strategy local --port FREE` plus `arguments`, waits until it listens, runs `body`
    /// with the node and its port, and stops the node if it is still running (also when `body` throws).
    /// `openFileLimit`: under `ulimit -n`, which the node cannot raise.
    static func with(_ arguments: [String], openFileLimit: Int? = nil, _ body: (LabChild, Int) async throws -> Void) async throws {
        let port = try LoopbackPort.free()
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("concord-app-\(UUID().uuidString).log").path
        defer { try? FileManager.default.removeItem(atPath: log) }
        let node = try LabChild.spawn(
            name: "app", executable: CommandLineTests.concordExecutable,
            arguments: ["app", "--strategy", "local", "--port", String(port)] + arguments,
            environment: ["CONCORD_PARENT_PID": String(getpid())], logPath: log, openFileLimit: openFileLimit,
            registry: ChildRegistry())
        do {
            let listening = await eventually(timeout: .seconds(30)) { node.logTail(50).contains("concord app listening") }
            try #require(listening, "the node never said it was listening:\n\(node.logTail())")
            try await body(node, port)
        } catch {
            await node.stop(grace: .seconds(2))
            throw error
        }
        await node.stop(grace: .seconds(2))
    }
}
