import ConcordReplication
import ConcordSessions
import ConcordSessionsTesting
import Testing

/// `sync` and `ring` pass the shared `SessionStore` conformance suite, alone and as a 3-node cluster used through
/// one node. Time comes from a manual clock, so expiry checks do not sleep.
@Suite(.timeLimit(.minutes(3))) struct ReplicatedStoreConformanceTests {
    static let maximumPayload = 512 << 10

    /// Runs every check, each on a fresh cluster of `nodes` stores, through node 0.
    static func runConformance<Store: ReplicatedSessionStore>(
        nodes: Int,
        make: @escaping @Sendable (ReplicationConfiguration, SessionWallClock) -> Store
    ) async throws {
        for check in SessionStoreConformance.Check.allCases {
            let clock = ManualClock()
            let wallClock = clock.wallClock()
            try await SessionStoreConformance.run(
                check, options: .manualClock(clock, maximumPayloadSize: maximumPayload)
            ) { body in
                try await TestCluster<Store>.with(
                    make: { make($0, wallClock) }, port: { try await $0.listeningPort() }
                ) { cluster in
                    for _ in 0..<nodes { try await cluster.start(peered: true) }
                    let peers = cluster.peers
                    for (index, store) in cluster.stores.enumerated() {
                        for peer in peers where peer.id != peers[index].id { store.addPeer(peer) }
                        try await store.waitUntilReady()
                    }
                    try await body(cluster[0])
                }
            }
        }
    }

    static func sync(_ configuration: ReplicationConfiguration, _ clock: SessionWallClock) -> SyncSessionStore {
        SyncSessionStore(configuration: configuration, wallClock: clock, missReadTimeout: .seconds(5), logger: testLogger)
    }

    static func ring(_ configuration: ReplicationConfiguration, _ clock: SessionWallClock) -> RingSessionStore {
        RingSessionStore(
            configuration: .init(replication: configuration, handoffGracePeriod: .milliseconds(100), readThroughTimeout: .seconds(5)),
            wallClock: clock, logger: testLogger)
    }

    @Test func syncAlone() async throws { try await Self.runConformance(nodes: 1, make: Self.sync) }

    @Test func syncClusterThroughOneNode() async throws { try await Self.runConformance(nodes: 3, make: Self.sync) }

    @Test func ringAlone() async throws { try await Self.runConformance(nodes: 1, make: Self.ring) }

    @Test func ringClusterThroughOneNode() async throws { try await Self.runConformance(nodes: 3, make: Self.ring) }
}
