import Foundation
import NIOCore
import NIOPosix
import Testing

@testable import ConcordLab

@Suite(.timeLimit(.minutes(1))) struct VirtualUserTests {
    /// The lab cancels its users when the last phase ends. A request cut short by that is not a failure of the
    /// cluster: before, every user waiting for an answer at that moment was counted as a "connection error" in the
    /// last phase (scale-in), whatever the strategy.
    @Test func aRequestCutShortByTheEndOfTheRunIsNotAFailure() async throws {
        // A server that accepts and never answers: the user's login stays pending.
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0).get()
        defer { server.close(promise: nil) }
        let port = try #require(server.localAddress?.port)

        let recorder = LabRecorder(phases: [LabPhase(kind: .steady, seconds: 1)])
        recorder.begin(phase: 0)
        let environment = VirtualUser.Environment(
            recorder: recorder, entry: LabEntryPoint(proxyPort: port), thinkTime: .milliseconds(10),
            requestTimeout: .seconds(20), parallelRequests: 1, startDelay: .zero)
        let user = Task {
            var user = VirtualUser(index: 0, environment: environment)
            await user.run()
        }
        try await Task.sleep(for: .milliseconds(300))
        user.cancel()
        await user.value
        let counts = recorder.currentCounts()
        #expect(counts.failed == 0, "the cancelled login was counted as a failure")
        #expect(counts.requests == 0)
    }
}
