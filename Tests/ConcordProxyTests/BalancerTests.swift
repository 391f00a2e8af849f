import ConcordHashing
import Logging
import Testing

@testable import ConcordProxy

@Suite(.timeLimit(.minutes(3))) struct BalancerTests {
    static let addresses = (1...5).map { HostPort(host: "127.0.0.1", port: 9000 + $0) }

    func balancer(_ count: Int = 5, algorithm: HashAlgorithm = .ring, boundedLoad: Double? = nil) throws -> Balancer {
        try Balancer(backends: Array(Self.addresses.prefix(count)), algorithm: algorithm, boundedLoad: boundedLoad,
                     health: HealthCheckConfiguration(rise: 1, fall: 1, ejectAfterConnectFailures: 1),
                     metrics: ProxyMetrics(), logger: Logger(label: "test"))
    }

    func owners(_ balancer: Balancer, keys: Int = 2_000) -> [String] {
        (0..<keys).map { key in
            let pick = balancer.pick(keyHash: KeyHash.hash("user-\(key)"))!
            balancer.release(pick)
            return pick.backend.id
        }
    }

    @Test func sameKeySameBackend() throws {
        let b = try balancer()
        #expect(owners(b) == owners(b))
        #expect(Set(owners(b)).count == 5)
    }

    @Test func aDownBackendsKeysMoveAndNoOthers() throws {
        let b = try balancer()
        let before = owners(b)
        let victim = b.backends[2]
        b.recordConnectFailure(victim)
        let after = owners(b)
        for (old, new) in zip(before, after) {
            if old == victim.id { #expect(new != victim.id) } else { #expect(new == old) }
        }
        // It returns when a probe succeeds (rise 1), and takes its keys back.
        b.recordProbe(victim, success: true, detail: "test")
        #expect(owners(b) == before)
    }

    @Test(arguments: [HashAlgorithm.ring, .jump, .maglev, .rendezvous])
    func addingABackendMovesAboutOneInNPlusOne(algorithm: HashAlgorithm) throws {
        let b = try balancer(4, algorithm: algorithm)
        let before = owners(b)
        try b.add(Self.addresses[4])
        // Pending until its first health check: no key moves yet.
        #expect(b.statuses().last?.state == "pending")
        #expect(owners(b) == before)
        b.recordProbe(b.backends[4], success: true, detail: "test")
        #expect(b.statuses().last?.state == "up")
        let after = owners(b)
        let moved = zip(before, after).filter { $0 != $1 }
        let fraction = Double(moved.count) / Double(before.count)
        #expect(fraction > 0.10 && fraction < 0.32, "moved \(fraction), ideal 0.2")
        // Moved keys go to the new backend (Maglev's table rebuild also shuffles a few percent among the others).
        let toNew = moved.filter { $0.1 == Self.addresses[4].description }.count
        #expect(Double(toNew) >= Double(moved.count) * (algorithm == .maglev ? 0.8 : 1.0))
    }

    /// A probe is for the backend as added: one of an instance that was removed, and still in flight when the same
    /// address is added again, does not decide the new instance's first check.
    @Test func aProbeOfARemovedInstanceDoesNotDecideTheReAddedOne() throws {
        let b = try balancer(4)
        try b.add(Self.addresses[4])
        let earlier = try #require(b.probeTargets.last)
        try b.remove(id: Self.addresses[4].description)
        try b.add(Self.addresses[4])
        b.recordProbe(earlier, success: true, detail: "probe of the removed instance")
        #expect(b.statuses().last?.state == "pending")
        #expect(b.statuses().last?.check == nil)
        let current = try #require(b.probeTargets.last)
        #expect(current !== earlier)
        b.recordProbe(current, success: false, detail: "refused")
        #expect(b.statuses().last?.state == "down")
        #expect(b.statuses().last?.check == "refused")
    }

    /// With no backend up to keep serving, added backends serve at once (a reload that replaces every backend would
    /// otherwise answer 503 until a first check passed), and the first probe still decides alone.
    @Test func backendsAddedWhenNoneIsUpServeAtOnce() throws {
        let b = try balancer(2)
        try b.replaceBackends(Array(Self.addresses[2...4]))
        #expect(b.statuses().map(\.state) == ["up", "up", "up"])
        #expect(Set(owners(b)) == Set(Self.addresses[2...4].map(\.description)))
        // The first probe decides alone, fall (1 here) or not: a failure takes it out.
        let failing = try #require(b.probeTargets.first)
        b.recordProbe(failing, success: false, detail: "refused")
        #expect(b.statuses().first?.state == "down")
        #expect(!owners(b).contains(failing.backend.id))
        // With one of them up, the next added backend is pending as usual.
        try b.add(Self.addresses[0])
        #expect(b.statuses().last?.state == "pending")

        // An empty pool too, and one whose every backend is down.
        let empty = try balancer(1)
        try empty.remove(id: Self.addresses[0].description)
        try empty.add(Self.addresses[1])
        #expect(empty.statuses().map(\.state) == ["up"])
        let down = try balancer(1)
        down.recordConnectFailure(down.backends[0])
        try down.add(Self.addresses[1])
        #expect(down.statuses().map(\.state) == ["down", "up"])
        #expect(Set(owners(down)) == [Self.addresses[1].description])
    }

    @Test func removingABackendMovesOnlyItsKeys() throws {
        let b = try balancer()
        let before = owners(b)
        let victim = b.backends[1].id
        try b.remove(id: victim)
        for (old, new) in zip(before, owners(b)) where old != victim { #expect(new == old) }
        #expect(throws: ProxyError.self) { try b.remove(id: victim) }
    }

    @Test func drainKeepsRecentKeysAndSendsNewOnesElsewhere() throws {
        let b = try balancer()
        let seen = owners(b, keys: 500)
        let target = b.backends[0].id
        try b.setDraining(id: target, true)
        // Keys it served before the drain stay.
        #expect(owners(b, keys: 500) == seen)
        // Keys it never served go to their next node.
        for key in 10_000..<12_000 {
            let pick = b.pick(keyHash: KeyHash.hash("new-\(key)"))!
            b.release(pick)
            #expect(pick.backend.id != target)
        }
        // Round-robin never picks it.
        for _ in 0..<20 {
            let pick = b.pickRoundRobin()!
            b.release(pick)
            #expect(pick.backend.id != target)
        }
        #expect(b.statuses().first { $0.id == target }?.draining == true)
    }

    @Test func stickyTokenFollowsItsBackendUntilItIsDown() throws {
        let b = try balancer(3)
        let first = b.pick(stickyToken: nil)!
        #expect(first.setsStickyCookie)
        let token = StickyCookie.token(for: first.backend)
        for _ in 0..<10 {
            let again = b.pick(stickyToken: Substring(token))!
            #expect(again.backend == first.backend && !again.setsStickyCookie)
        }
        // Draining keeps a bound client.
        try b.setDraining(id: first.backend.id, true)
        #expect(b.pick(stickyToken: Substring(token))!.backend == first.backend)
        // Down: another backend and a new cookie.
        b.recordConnectFailure(first.backend)
        let moved = b.pick(stickyToken: Substring(token))!
        #expect(moved.backend != first.backend && moved.setsStickyCookie && moved.remapped)
        // A forged token is a new client, not an error.
        #expect(b.pick(stickyToken: "not-a-backend")!.setsStickyCookie)
    }

    @Test func loadIsCountedPerBackendAndReleasedFromAnyThread() async throws {
        let metrics = ProxyMetrics()
        let b = try Balancer(
            backends: Array(Self.addresses.prefix(3)), algorithm: .ring, boundedLoad: nil,
            health: HealthCheckConfiguration(rise: 1, fall: 1, ejectAfterConnectFailures: 1), metrics: metrics,
            logger: Logger(label: "test"))
        let key = KeyHash.hash("user-7")
        // Two event loops' worth of requests for one key at once, released from other tasks: the count must end at 0.
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<8 {
                group.addTask { for _ in 0..<500 { b.release(b.pick(keyHash: key)!) } }
            }
        }
        let owner = b.pick(keyHash: key)!
        let status = try #require(b.statuses().first { $0.id == owner.backend.id })
        #expect(status.active == 1)
        #expect(status.requests == 4_001)
        b.release(owner)
        #expect(b.statuses().allSatisfy { $0.active == 0 })
        // The request counter (counted outside the balancer's lock) and a remap after the owner went down.
        b.recordConnectFailure(owner.backend)
        let moved = b.pick(keyHash: key)!
        #expect(moved.remapped && moved.backend != owner.backend)
        let exposition = metrics.exposition()
        #expect(exposition.contains("concord_proxy_backend_requests_total{backend=\"\(owner.backend.id)\"} 4001"))
        #expect(exposition.contains("concord_proxy_keys_remapped_total 1"))
    }

    @Test func roundRobinVisitsEveryBackend() throws {
        let b = try balancer(3)
        let picks = (0..<9).map { _ in b.pickRoundRobin()!.backend.id }
        #expect(Dictionary(grouping: picks, by: { $0 }).values.allSatisfy { $0.count == 3 })
    }

    @Test func leastConnectionsPrefersTheIdleBackend() throws {
        let b = try balancer(3)
        let held = [b.pickLeastConnections()!, b.pickLeastConnections()!]
        let third = b.pickLeastConnections()!
        #expect(!held.map(\.backend).contains(third.backend))
        b.release(held[0])
        #expect(b.pickLeastConnections()!.backend == held[0].backend)
    }

    @Test func boundedLoadCapsAHotKey() throws {
        let b = try balancer(4, boundedLoad: 1.25)
        // One key, many concurrent requests: it spills once its owner is at the cap.
        let picks = (0..<40).map { _ in b.pick(keyHash: KeyHash.hash("hot"))! }
        let counts = Dictionary(grouping: picks, by: \.backend.id).mapValues(\.count)
        #expect(counts.count > 1)
        #expect(counts.values.max()! <= Int((1.25 * 40 / 4).rounded(.up)) + 1)
    }

    @Test func noBackendUpMeansNoPick() throws {
        let b = try balancer(2)
        for backend in b.backends { b.recordConnectFailure(backend) }
        #expect(b.pick(keyHash: 1) == nil)
        #expect(b.pickRoundRobin() == nil)
        #expect(b.pick(stickyToken: nil) == nil)
    }
}
