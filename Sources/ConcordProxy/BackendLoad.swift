import Synchronization

/// One backend's requests (L7) or connections (L4) in flight, and how many it was given: counted with atomics so
/// that finishing a request never takes the balancer's lock. Kept across membership changes while the backend stays.
final class BackendLoad: Sendable {
    private let inFlight = Atomic<Int>(0)
    private let picked = Atomic<Int>(0)

    /// In flight now (never below 0, even if a release raced a reset it did not see).
    var active: Int { max(0, inFlight.load(ordering: .relaxed)) }
    /// Picks so far.
    var requests: Int { picked.load(ordering: .relaxed) }

    func began() {
        inFlight.add(1, ordering: .relaxed)
        picked.add(1, ordering: .relaxed)
    }

    func ended() {
        inFlight.subtract(1, ordering: .relaxed)
    }
}
