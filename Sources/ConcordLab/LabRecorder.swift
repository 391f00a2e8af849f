import Synchronization

/// Collects what every virtual user sees into the current phase's ``PhaseTally``. Safe to use from thousands of
/// tasks at once: one short critical section per request.
public final class LabRecorder: Sendable {
    public let phases: [LabPhase]
    private let tallies: Mutex<[PhaseTally]>
    private let current = Atomic<Int>(0)
    private let burstRequests = Atomic<Int>(0)

    public init(phases: [LabPhase]) {
        self.phases = phases
        self.tallies = Mutex(Array(repeating: PhaseTally(), count: phases.count))
    }

    /// The index of the phase now running.
    public var phaseIndex: Int { current.load(ordering: .acquiring) }
    public var phase: LabPhase { phases[phaseIndex] }

    public func begin(phase index: Int) { current.store(index, ordering: .releasing) }

    /// Records one completed exchange.
    public func record(user: Int, microseconds: UInt64, failed: Bool, failure: String?, node: String?, internetBytes: Int) {
        tallies.withLock { tallies in
            let index = phaseIndex
            tallies[index].activeUsers.insert(user)
            tallies[index].requests += 1
            _ = tallies[index].latency.record(min(microseconds, 60_000_000))
            tallies[index].internetBytes += internetBytes
            if let node { tallies[index].requestsPerNode[node, default: 0] += 1 }
            if failed {
                tallies[index].failedRequests += 1
                tallies[index].failureReasons[failure ?? "error", default: 0] += 1
            }
        }
    }

    /// Records a request that got no response at all (connect error, reset, timeout).
    public func recordTransportFailure(user: Int, reason: String) {
        tallies.withLock { tallies in
            let index = phaseIndex
            tallies[index].activeUsers.insert(user)
            tallies[index].requests += 1
            tallies[index].failedRequests += 1
            tallies[index].failureReasons[reason, default: 0] += 1
        }
    }

    /// Records that a request is being resent on a new connection (its reused one closed before any response).
    public func recordResend(user: Int) {
        tallies.withLock { $0[phaseIndex].resentRequests += 1 }
    }

    public func recordLostSession(user: Int) {
        tallies.withLock { _ = $0[phaseIndex].lostUsers.insert(user) }
    }

    /// - Parameter phase: the phase the lost additions were made in (a burst's check can finish in the next
    ///   phase on a loaded machine); the current phase by default.
    public func recordLostCartItems(_ count: Int, phase: Int? = nil) {
        guard count > 0 else { return }
        let index = phase ?? phaseIndex
        tallies.withLock { $0[index].lostCartItems += count }
    }

    public func recordIntranetBytes(_ bytes: Int) {
        guard bytes > 0 else { return }
        tallies.withLock { $0[phaseIndex].intranetBytes += bytes }
    }

    public func recordNode(_ node: String, peakResidentBytes: Int?) {
        tallies.withLock { tallies in
            let index = phaseIndex
            tallies[index].liveNodes.insert(node)
            if let peakResidentBytes {
                tallies[index].peakResidentBytes[node] = max(tallies[index].peakResidentBytes[node] ?? 0, peakResidentBytes)
            }
        }
    }

    /// A copy of every phase's tally.
    public func snapshot() -> [PhaseTally] { tallies.withLock { $0 } }

    /// A parallel burst's request started / ended (answered, failed or cut short).
    public func burstRequestStarted() { burstRequests.add(1, ordering: .relaxed) }
    public func burstRequestEnded() { burstRequests.subtract(1, ordering: .relaxed) }

    /// Parallel-burst requests not answered yet.
    public var burstRequestsInFlight: Int { burstRequests.load(ordering: .relaxed) }

    /// Waits until every parallel-burst request has ended, at most `timeout`; returns whether they all did. The
    /// lab ends the parallel phase this way: thousands of simultaneous additions can leave the nodes seconds behind
    /// on a small machine, and the next phase (a restart) would otherwise start on that queue and count its latency
    /// and its cut-off requests as the restart's own (docs/lab.md, "Restart bursts under overload").
    public func waitUntilBurstsEnd(timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while burstRequestsInFlight > 0 {
            guard ContinuousClock.now < deadline else { return false }
            do { try await Task.sleep(for: .milliseconds(20)) } catch { return false }
        }
        return true
    }

    /// Requests, failures and lost users in the current phase, for the progress line.
    public func currentCounts() -> (requests: Int, failed: Int, lost: Int, active: Int) {
        tallies.withLock { tallies in
            let tally = tallies[phaseIndex]
            return (tally.requests, tally.failedRequests, tally.lostUsers.count, tally.activeUsers.count)
        }
    }
}
