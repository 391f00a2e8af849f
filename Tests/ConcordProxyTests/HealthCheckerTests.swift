import ConcordSessionsTesting
import Logging
import NIOPosix
import Testing

@testable import ConcordProxy

@Suite(.timeLimit(.minutes(3))) struct HealthCheckerTests {
    /// Rounds are an hour apart on a ``ManualClock``: only advancing the clock runs the next one, so the test
    /// counts probes exactly (a checker sleeping on the real clock would never get past the first round).
    @Test func fallsAfterFallFailedProbesAndRisesAfterRiseSuccessesOnTheInjectedClock() async throws {
        try await ProxyHarness.withBackends(["a"]) { backends in
            let backend = backends[0]
            let interval: Double = 3600
            let balancer = try Balancer(
                backends: [try HostPort(parsing: backend.address)], algorithm: .ring, boundedLoad: nil,
                health: HealthCheckConfiguration(path: "/health", interval: interval, timeout: 1, rise: 2, fall: 3),
                metrics: ProxyMetrics(), logger: Logger(label: "health-checker-test"))
            let clock = ManualClock()
            let checker = HealthChecker(balancer: balancer, group: MultiThreadedEventLoopGroup.singleton, clock: clock)
            let task = Task { await checker.run() }
            var state: String { balancer.statuses()[0].state }
            /// Waits until round `n` has probed the backend, recorded the result and gone back to sleep.
            func waitForRound(_ n: Int) async throws {
                try await waitUntil { backend.healthChecks == n && clock.sleeperCount == 1 }
            }
            var round = 1
            /// Lets `seconds` pass on the clock, which must start the next round.
            func nextRound(after seconds: Double) async throws {
                clock.advance(by: .seconds(seconds))
                round += 1
                try await waitForRound(round)
            }

            try await waitForRound(1)  // the first round runs at once
            #expect(state == "up")
            backend.setHealthy(false)
            for failed in 1...3 {
                try await nextRound(after: interval)
                #expect(state == (failed < 3 ? "up" : "down"), "after \(failed) failed probes (fall 3)")
            }
            backend.setHealthy(true)
            for succeeded in 1...2 {
                try await nextRound(after: interval)
                #expect(state == (succeeded < 2 ? "down" : "up"), "after \(succeeded) good probes (rise 2)")
            }

            // New settings (a reload) apply from the next round: fall 1 takes the backend down at once, and the
            // round after waits the new interval of 60 s.
            try balancer.reconfigure(
                backends: nil, algorithm: .ring, boundedLoad: nil,
                health: HealthCheckConfiguration(path: "/health", interval: 60, timeout: 1, rise: 2, fall: 1))
            backend.setHealthy(false)
            try await nextRound(after: interval)
            #expect(state == "down")
            backend.setHealthy(true)
            clock.advance(by: .seconds(59))
            #expect(clock.sleeperCount == 1, "59 s must not end a 60 s interval")
            try await nextRound(after: 1)
            #expect(state == "down", "one good probe of rise 2")
            try await nextRound(after: 60)
            #expect(state == "up")

            task.cancel()
            await task.value
            #expect(clock.sleeperCount == 0)
        }
    }

    /// A backend added while the checker sleeps (rounds an hour apart) is probed at once, and still is by the checker
    /// of a later run (a server started again): cancelling the first run ended its subscription, not the next one's.
    @Test func anAddedBackendIsProbedAtOnceByTheRunningChecker() async throws {
        try await ProxyHarness.withBackends(["a", "b", "c"]) { backends in
            let health = HealthCheckConfiguration(path: "/health", interval: 3600, timeout: 1, rise: 3, fall: 3)
            let balancer = try Balancer(
                backends: [try HostPort(parsing: backends[0].address)], algorithm: .ring, boundedLoad: nil, health: health,
                metrics: ProxyMetrics(), logger: Logger(label: "health-checker-test"))
            let clock = ManualClock()
            for (run, added) in [backends[1], backends[2]].enumerated() {
                let checker = HealthChecker(balancer: balancer, group: MultiThreadedEventLoopGroup.singleton, clock: clock)
                let task = Task { await checker.run() }
                try await waitUntil { clock.sleeperCount == 1 }  // the first round is done
                try balancer.add(try HostPort(parsing: added.address))
                #expect(balancer.statuses().last?.state == "pending")
                try await waitUntil { balancer.statuses().last?.state != "pending" }
                #expect(balancer.statuses().last?.state == "up", "run \(run + 1): one passing check is enough (rise 3)")
                #expect(added.healthChecks == 1 && clock.sleeperCount == 1, "probed once, with no round")
                task.cancel()
                await task.value
            }
        }
    }

    /// A probe gets `timeout` in all, connect to status line: a health path that answers in 300 ms fails a 0.2-s
    /// timeout (it passed before 2026-12-04, when the status line had another `timeout` after the connect).
    @Test func aProbeGetsTimeoutInAll() async throws {
        try await ProxyHarness.withBackends(["a"]) { backends in
            let balancer = try Balancer(
                backends: [try HostPort(parsing: backends[0].address)], algorithm: .ring, boundedLoad: nil,
                health: HealthCheckConfiguration(path: "/slow", interval: 1, timeout: 0.2, rise: 1, fall: 1),
                metrics: ProxyMetrics(), logger: Logger(label: "health-checker-test"))
            let checker = HealthChecker(balancer: balancer, group: MultiThreadedEventLoopGroup.singleton)
            let (healthy, detail) = await checker.probe(balancer.backends[0], balancer.healthConfiguration)
            #expect(healthy == false && detail == "health check timed out after 0.2 s", "\(String(describing: healthy)) \(detail)")
            let (slowButInTime, _) = await checker.probe(
                balancer.backends[0], HealthCheckConfiguration(path: "/slow", interval: 1, timeout: 1))
            #expect(slowButInTime == true)
        }
    }

    /// Rounds start an interval apart, from the start of the one before: a backend that never answers makes its own
    /// probe wait out the timeout, and the next round is not put off by it (every backend's checks were spaced by
    /// interval + twice the timeout before 2026-12-04). Here the interval passes on the clock while the first
    /// round still waits for the hung backend; the next round starts as soon as that one ends.
    @Test func aBackendThatNeverAnswersPutsOffNoRound() async throws {
        try await ProxyHarness.withBackends(["a"]) { backends in
            let hung = try await TestGatedBackend.start(name: "hung")  // holds every request, /health too
            let balancer = try Balancer(
                backends: [try HostPort(parsing: backends[0].address), try HostPort(parsing: hung.address)],
                algorithm: .ring, boundedLoad: nil,
                health: HealthCheckConfiguration(path: "/health", interval: 3600, timeout: 1, rise: 1, fall: 1),
                metrics: ProxyMetrics(), logger: Logger(label: "health-checker-test"))
            let clock = ManualClock()
            let checker = HealthChecker(balancer: balancer, group: MultiThreadedEventLoopGroup.singleton, clock: clock)
            let task = Task { await checker.run() }
            try await waitUntil { backends[0].healthChecks == 1 }
            #expect(clock.sleeperCount == 0, "the first round waits for the hung backend's probe")
            clock.advance(by: .seconds(3600))
            try await waitUntil { backends[0].healthChecks == 2 }
            #expect(balancer.statuses().map(\.state) == ["up", "down"])
            task.cancel()
            await task.value
            await hung.stop()
        }
    }
}
