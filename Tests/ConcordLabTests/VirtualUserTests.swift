import ConcordSessionsTesting
import Foundation
import NIOConcurrencyHelpers
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
        let (server, environment) = try silentServer(phase: .steady, parallelRequests: 1)
        defer { server.close() }
        let recorder = environment.recorder
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

    /// The lab ends the parallel phase only once every burst request has ended: the recorder counts them from
    /// start to end, whatever the outcome (here a server that never answers, then the user is cancelled).
    @Test func burstRequestsCountAsInFlightUntilTheyEnd() async throws {
        let (server, environment) = try silentServer(phase: .parallel, parallelRequests: 3)
        defer { server.close() }
        let recorder = environment.recorder
        let burst = Task {
            var user = VirtualUser(index: 0, environment: environment)
            await user.parallelBurst()
        }
        #expect(await eventually(timeout: .seconds(10)) { recorder.burstRequestsInFlight == 3 })
        #expect(await !recorder.waitUntilBurstsEnd(timeout: .milliseconds(200)), "the wait ended with requests in flight")
        let waiter = Task { await recorder.waitUntilBurstsEnd(timeout: .seconds(20)) }
        burst.cancel()
        await burst.value
        #expect(await waiter.value, "the wait did not end once the requests had")
        #expect(recorder.burstRequestsInFlight == 0)
    }

    /// A loopback socket that takes connections (through the kernel's backlog) and never answers, and one user's environment in a one-phase
    /// run of `phase` aimed at it.
    private func silentServer(phase: LabPhase.Kind, parallelRequests: Int) throws -> (LoopbackSocket, VirtualUser.Environment) {
        let server = try LoopbackSocket.silent()
        let port = server.port
        let recorder = LabRecorder(phases: [LabPhase(kind: phase, seconds: 1)])
        recorder.begin(phase: 0)
        let environment = VirtualUser.Environment(
            recorder: recorder, entry: LabEntryPoint(proxyPort: port), thinkTime: .milliseconds(10),
            requestTimeout: .seconds(20), parallelRequests: parallelRequests, startDelay: .zero)
        return (server, environment)
    }

    /// A stopping node closes its idle keep-alive connections; a request that crosses that close gets no response.
    /// A browser resends it once on a new connection (Chrome does so for a reused connection that closed before
    /// any response byte), so the lab does too, and counts it as resent, not failed.
    @Test func aRequestWhoseReusedConnectionClosesBeforeAnyResponseIsResentOnce() async throws {
        // Answers the first request on each connection (keep-alive), closes on the second without answering.
        let (counts, resent) = try await exchanges(count: 2, answering: 1)
        #expect(counts.requests == 2 && counts.failed == 0, "\(counts)")
        #expect(resent == 1)
    }

    @Test func aFreshConnectionThatClosesBeforeAnyResponseIsAFailureNotResent() async throws {
        let (counts, resent) = try await exchanges(count: 1, answering: 0)
        #expect(counts.requests == 1 && counts.failed == 1, "\(counts)")
        #expect(resent == 0)
    }

    /// One user sends `count` GETs to a server that answers the first `answering` requests on each connection and
    /// closes the connection on the next one; returns the recorder's counts and the resent requests.
    private func exchanges(count: Int, answering: Int) async throws -> ((requests: Int, failed: Int, lost: Int, active: Int), Int) {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(AnswerThenClose(answering: answering)) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        defer { server.close(promise: nil) }
        let recorder = LabRecorder(phases: [LabPhase(kind: .steady, seconds: 1)])
        recorder.begin(phase: 0)
        let environment = VirtualUser.Environment(
            recorder: recorder, entry: LabEntryPoint(proxyPort: try #require(server.localAddress?.port)),
            thinkTime: .milliseconds(10), requestTimeout: .seconds(20), parallelRequests: 1, startDelay: .zero)
        var user = VirtualUser(index: 0, environment: environment)
        for index in 0..<count { _ = await user.exchange(.GET, "/\(index)") }
        return (recorder.currentCounts(), recorder.snapshot()[0].resentRequests)
    }

    final class AnswerThenClose: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let answering: Int
        private let seen = NIOLockedValueBox(0)
        init(answering: Int) { self.answering = answering }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let requests = String(buffer: unwrapInboundIn(data)).components(separatedBy: "\r\n\r\n").count - 1
            for _ in 0..<requests {
                let number = seen.withLockedValue { $0 += 1; return $0 }
                guard number <= answering else {
                    context.close(promise: nil)
                    return
                }
                context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")), promise: nil)
            }
        }
    }
}
