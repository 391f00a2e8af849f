import ConcordLab
import ConcordSessionsTesting
import NIOCore
import NIOHTTP1
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `concord app --quiesce-grace SECONDS`, the real binary, shut down by SIGTERM without a shutdown delay: a
/// keep-alive connection that is idle when the node quiesces stays open for the grace, so a request sent on it
/// then is answered (with `Connection: close`) instead of cut off; an idle connection closes when the grace ends.
@Suite(.serialized, .timeLimit(.minutes(2))) struct QuiesceGraceTests {
    @Test func aRequestOnAnIdleConnectionDuringShutdownIsAnswered() async throws {
        try await AppNode.with(["--quiesce-grace", "10"]) { node, port in  // long enough for a loaded machine
            let connection = try await LabHTTPConnection.connect(port: port, sourceAddress: nil, timeout: .seconds(10))
            let before = try await connection.send(method: .GET, path: "/login", timeout: .seconds(10))
            #expect(before.status == 200 && before.headers.first(name: "connection") == nil)

            node.send(SIGTERM)
            // The server closes its listener, then quiesces its connections: without the grace, this idle one
            // closes at that moment.
            let listenerClosed = await eventually(timeout: .seconds(20)) {
                (try? await LabHTTPConnection.oneShot(port: port, path: "/health", timeout: .seconds(2))) == nil
            }
            try #require(listenerClosed, "the node still accepted connections 20 s after SIGTERM")
            try await Task.sleep(for: .milliseconds(200))

            let during = try await connection.send(method: .GET, path: "/login", timeout: .seconds(10))
            #expect(during.status == 200)
            #expect(during.headers.first(name: "connection")?.lowercased() == "close")
            #expect(await eventually(timeout: .seconds(20)) { !node.isRunning }, "the node did not stop after answering")
            #expect(node.exitCode == 0, "\(node.logTail())")
            await connection.close()
        }
    }

    @Test func anIdleConnectionClosesWhenTheGraceEnds() async throws {
        try await AppNode.with(["--quiesce-grace", "1.5"]) { node, port in
            let connection = try await LabHTTPConnection.connect(port: port, sourceAddress: nil, timeout: .seconds(10))
            #expect(try await connection.send(method: .GET, path: "/health", timeout: .seconds(10)).status == 200)
            node.send(SIGTERM)
            let signalled = ContinuousClock.now
            #expect(await eventually(timeout: .seconds(20)) { !connection.isActive }, "the idle connection stayed open")
            #expect(ContinuousClock.now - signalled >= .milliseconds(1_400), "closed before the 1.5-s grace")
            #expect(await eventually(timeout: .seconds(20)) { !node.isRunning }, "the node did not stop after the grace")
            #expect(node.exitCode == 0, "\(node.logTail())")
        }
    }

    /// Connections accepted while the node shuts down must close at once: held open, their unused `NIOAsyncChannel`
    /// traps when released (SIGILL; a first version of the grace did so in 5 of 15 shutdowns under this load).
    @Test func connectionsArrivingDuringTheShutdownDoNotCrashTheNode() async throws {
        for round in 1...3 {
            try await AppNode.with([]) { node, port in
                let stop = ContinuousClock.now.advanced(by: .seconds(15))  // bound if the node never stops
                await withTaskGroup(of: Void.self) { group in
                    for _ in 0..<24 {
                        group.addTask {
                            // Fresh connections, one request each, until the node refuses them.
                            while ContinuousClock.now < stop {
                                do {
                                    _ = try await LabHTTPConnection.oneShot(port: port, path: "/health", timeout: .seconds(2))
                                } catch {
                                    if !node.isRunning { return }
                                }
                            }
                        }
                    }
                    try? await Task.sleep(for: .milliseconds(500))
                    node.send(SIGTERM)
                }
                #expect(await eventually(timeout: .seconds(20)) { !node.isRunning }, "round \(round): the node did not stop")
                #expect(node.exitCode == 0, "round \(round): \(node.logTail())")
            }
        }
    }
}
