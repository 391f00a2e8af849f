import Logging
import NIOCore
import NIOPosix
import Testing

@testable import ConcordProxy

@Suite(.timeLimit(.minutes(3))) struct EventLoopCPUAffinityTests {
    /// Each loop of a fresh group ends up allowed on exactly the CPU `pin` reports for it, round-robin over the
    /// process's CPUs (three loops, so on a 2-core machine one CPU gets two); the test's own thread stays unpinned.
    @Test func pinsEveryLoopToItsCPU() async throws {
        let allowed = EventLoopCPUAffinity.allowedCPUs()
        try #require(!allowed.isEmpty, "sched_getaffinity gave no CPUs")
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 3)
        do {
            let assigned = try #require(await EventLoopCPUAffinity.pin(group, logger: Logger(label: "test")))
            #expect(assigned == (0..<3).map { allowed[$0 % allowed.count] })
            for (index, loop) in group.makeIterator().enumerated() {
                let seen = try await loop.submit { EventLoopCPUAffinity.allowedCPUs() }.get()
                #expect(seen == [assigned[index]], "loop \(index)")
            }
            #expect(EventLoopCPUAffinity.allowedCPUs() == allowed)
        } catch {
            try await group.shutdownGracefully()
            throw error
        }
        try await group.shutdownGracefully()
    }
}
