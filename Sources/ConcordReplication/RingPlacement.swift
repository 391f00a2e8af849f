import ConcordHashing
import Synchronization

/// Which nodes hold a session under `ring`: the first k + 1 distinct nodes for its id on the proxy's selection
/// (``ConcordHashing/NodeSelection/preferenceList(for:count:)``), now and before the last membership change.
///
/// Selections are immutable and rebuilt only when the member set changes (node ids sorted, so every node builds
/// the same one).
final class RingPlacement: Sendable {
    struct Snapshot: Sendable {
        var current: any NodeSelection
        /// The selection before the last change; `nil` once the grace period is over.
        var previous: (any NodeSelection)?
        var members: Set<String>
    }

    private struct State {
        var current: any NodeSelection
        var previous: (any NodeSelection)?
        var members: Set<String>
        var changedAt: ContinuousClock.Instant
    }

    let selfID: String
    let replicaCount: Int
    private let algorithm: HashAlgorithm
    private let gracePeriod: Duration
    private let state: Mutex<State>

    /// Starts as if this node had just joined `members`: until the grace period ends, sessions it should hold but
    /// lacks are read through from the nodes that held them before it was there.
    init(selfID: String, members: Set<String>, backups: Int, algorithm: HashAlgorithm, gracePeriod: Duration) {
        self.selfID = selfID
        self.replicaCount = backups + 1
        self.algorithm = algorithm
        self.gracePeriod = gracePeriod
        var all = members
        all.insert(selfID)
        let others = all.subtracting([selfID])
        self.state = Mutex(
            State(
                current: Self.selection(all, algorithm),
                previous: others.isEmpty ? nil : Self.selection(others, algorithm),
                members: all,
                changedAt: .now))
    }

    private static func selection(_ members: Set<String>, _ algorithm: HashAlgorithm) -> any NodeSelection {
        // Member ids are unique, non-empty and weight 1, the only inputs a selection rejects.
        try! algorithm.makeSelection(nodes: members.sorted().map { Node(id: $0) })
    }

    /// Rebuilds the selection for a new member set. Returns `false` when the set did not change.
    @discardableResult
    func update(members newMembers: Set<String>) -> Bool {
        var all = newMembers
        all.insert(selfID)
        let selection = Self.selection(all, algorithm)
        return state.withLock { state in
            guard state.members != all else { return false }
            state.previous = state.current
            state.current = selection
            state.members = all
            state.changedAt = .now
            return true
        }
    }

    var snapshot: Snapshot {
        state.withLock { state in
            let inGrace = ContinuousClock.now < state.changedAt.advanced(by: gracePeriod)
            return Snapshot(current: state.current, previous: inGrace ? state.previous : nil, members: state.members)
        }
    }

    /// Whether the last membership change is older than the grace period.
    var isSettled: Bool { snapshot.previous == nil }
}

extension RingPlacement.Snapshot {
    /// The ids of the nodes that hold `sessionID` now, owner first.
    func holders(of sessionID: String, count: Int) -> [String] {
        current.preferenceList(for: sessionID, count: count).map(\.id)
    }

    /// The ids of the nodes that held `sessionID` before the last change (empty when settled).
    func previousHolders(of sessionID: String, count: Int) -> [String] {
        previous?.preferenceList(for: sessionID, count: count).map(\.id) ?? []
    }
}
