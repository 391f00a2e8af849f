import ConcordLab
import ConcordSessionsTesting
import Foundation
import Logging
import NIOCore
import Synchronization
import Testing

/// `concord lab --shutdown-delay`: the lab's graceful restart of a node started with a shutdown delay lasts at
/// least the delay, and requests sent through the proxy all the while are all answered — the node left the
/// proxy's rotation (health check on /ready) before it stopped. Real binaries: two `store` nodes and the proxy.
@Suite(.serialized, .timeLimit(.minutes(3))) struct LabShutdownDelayTests {
    @Test func aRestartDrainsTheNodeFirst() async throws {
        let delay = 5.0  // above the proxy's health check: every 1 s, down after 3 failures
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("concord-lab-delay-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let configuration = LabConfiguration(strategies: [.store], nodes: 2, shutdownDelaySeconds: delay)
        try configuration.validate()
        let cluster = LabCluster(
            strategy: .store, configuration: configuration, executable: CommandLineTests.concordExecutable,
            workDirectory: directory, proxyAvailable: true, logger: Logger(label: "test.lab"))
        do {
            try await cluster.start()
            let port = cluster.entry.port(turn: 0)
            let answer = try await LabHTTPConnection.oneShot(port: port, path: "/login", timeout: .seconds(10))
            try #require(answer.status == 200)

            let restart = ContinuousClock.now
            let (answeredAt, failed) = try await withThrowingTaskGroup(of: ([Duration], [String]).self) { group in
                let done = ManagedFlag()
                group.addTask {
                    // One request every 20 ms on a new connection until the restart is over (at most 60 s).
                    var answeredAt: [Duration] = []
                    var failed: [String] = []
                    let deadline = ContinuousClock.now + .seconds(60)
                    while !done.value, ContinuousClock.now < deadline {
                        do {
                            let response = try await LabHTTPConnection.oneShot(port: port, path: "/login", timeout: .seconds(10))
                            if response.status == 200 {
                                answeredAt.append(ContinuousClock.now - restart)
                            } else {
                                failed.append("HTTP \(response.status)")
                            }
                        } catch {
                            failed.append("\(error)")
                        }
                        try? await Task.sleep(for: .milliseconds(20))
                    }
                    return (answeredAt, failed)
                }
                try await cluster.inject(LabPhase(kind: .restart, seconds: 1))
                done.set()
                return try await group.next()!
            }
            let took = ContinuousClock.now - restart
            #expect(took >= .seconds(delay), "the restart took \(took), less than the \(delay)-s delay")
            // Answered from the start of the drain to its end — counted by time, not number: a loaded CI machine
            // manages ≈ 4 requests a second here (20 in the 5 s once), an idle one ≈ 40.
            let answered = answeredAt.count
            #expect(answered >= 5, "only \(answered) requests were answered during the restart")
            #expect((answeredAt.first ?? .seconds(60)) < .seconds(1.5), "the first answer came \(answeredAt.first.map { "\($0)" } ?? "never")")
            #expect((answeredAt.last ?? .zero) > .seconds(delay - 1.5), "the last answer came at \(answeredAt.last.map { "\($0)" } ?? "never"), before the drain's end")
            #expect(failed.isEmpty, "\(failed.count) requests failed during a drained restart: \(failed.prefix(5))")
            #expect(await cluster.nodeIDs.count == 2)
        } catch {
            await cluster.stopAll()
            throw error
        }
        await cluster.stopAll()
    }
}

/// A flag one task sets and another polls.
private final class ManagedFlag: Sendable {
    private let state = Mutex(false)
    var value: Bool { state.withLock { $0 } }
    func set() { state.withLock { $0 = true } }
}
