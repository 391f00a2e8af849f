import ConcordLab
import ConcordSessionsTesting
import Foundation
import NIOCore
import NIOHTTP1
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `concord app --shutdown-delay SECONDS`, the real binary: a shutdown signal makes `/ready` answer 503 while the
/// node keeps serving, so a proxy's health check moves new requests away before the node closes its connections;
/// the node stops once the delay is over, or at once on a second signal.
@Suite(.serialized, .timeLimit(.minutes(2))) struct ShutdownDelayTests {
    @Test func aSignalMakesTheNodeUnreadyAndItStopsAfterTheDelay() async throws {
        // Long enough to observe on a loaded machine: with 3 s, two CPU hogs beside the suite made the delay end before
        // the checks below ran (2026-12-03: a reset on a request after the signal, most likely the node stopping on time).
        try await withNode(delay: 5) { node, port in
            let ready = try await status(port, "/ready")
            #expect(ready == 200)
            node.send(SIGTERM)
            let signalled = ContinuousClock.now
            #expect(await eventually { (try? await status(port, "/ready")) == 503 }, "/ready never answered 503")
            let body = try await LabHTTPConnection.oneShot(port: port, path: "/ready", timeout: .seconds(10)).bodyText
            #expect(body == "stopping\n", "it said 'starting' while stopping: \(body)")
            let health = try await status(port, "/health")
            let login = try await status(port, "/login")
            #expect(health == 200 && login == 200, "the node stopped serving during the delay")
            let exited = await eventually(timeout: .seconds(30)) { !node.isRunning }
            #expect(exited, "the node did not stop after the delay")
            #expect(ContinuousClock.now - signalled >= .milliseconds(4_900), "stopped before the 5-s delay")
            #expect(node.exitCode == 0, "\(node.logTail())")
            #expect(node.logTail().contains("concord app stopped"), "no line says the node stopped: \(node.logTail())")
        }
    }

    @Test func aSecondSignalStopsTheNodeAtOnce() async throws {
        try await withNode(delay: 60) { node, port in
            node.send(SIGTERM)
            #expect(await eventually { (try? await status(port, "/ready")) == 503 })
            node.send(SIGTERM)
            #expect(await eventually(timeout: .seconds(20)) { !node.isRunning }, "still running 20 s after a second signal")
            #expect(node.exitCode == 0, "\(node.logTail())")
        }
    }

    private func withNode(delay: Double, _ body: (LabChild, Int) async throws -> Void) async throws {
        try await AppNode.with(["--shutdown-delay", String(delay)], body)
    }

    /// The status of one GET on a new connection.
    private func status(_ port: Int, _ path: String) async throws -> Int {
        try await LabHTTPConnection.oneShot(port: port, path: path, timeout: .seconds(10)).status
    }
}
