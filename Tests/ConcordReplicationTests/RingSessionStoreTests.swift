import ConcordSessions
import Testing

@testable import ConcordReplication

@Suite(.timeLimit(.minutes(3))) struct RingSessionStoreTests {
    static func makeStore(_ configuration: ReplicationConfiguration) -> RingSessionStore {
        RingSessionStore(
            configuration: .init(replication: configuration, backups: 1, handoffGracePeriod: .milliseconds(600), readThroughTimeout: .seconds(5)),
            logger: testLogger)
    }

    /// Starts `count` ring nodes, each joining the ones before it, then peers the earlier ones back.
    static func withRingCluster(count: Int, _ body: (TestCluster<RingSessionStore>) async throws -> Void) async throws {
        try await TestCluster<RingSessionStore>.with(make: makeStore, port: { try await $0.listeningPort() }) {
            cluster in
            for _ in 0..<count { try await cluster.start(peered: true) }
            try await peerBack(cluster)
            try await body(cluster)
        }
    }

    static func peerBack(_ cluster: TestCluster<RingSessionStore>) async throws {
        let peers = cluster.peers
        for (index, store) in cluster.stores.enumerated() {
            for peer in peers where peer.id != peers[index].id && !store.peers.contains(peer) { store.addPeer(peer) }
            try await store.waitUntilReady()
        }
        for store in cluster.stores {
            for peer in peers where peer.id != store.configuration.replication.nodeID {
                #expect(await eventually { store.node.isConnected(to: peer.id) })
            }
        }
    }

    static func index(of nodeID: String) -> Int { Int(nodeID.split(separator: "-").last!)! }

    @Test func eachSessionLivesOnItsOwnerAndOneBackupOnly() async throws {
        try await Self.withRingCluster(count: 4) { cluster in
            let stores = cluster.stores
            for index in 0..<200 {
                _ = try await stores[index % 4].save(
                    StoredSession(id: "s\(index)", payload: [UInt8(index % 256)], userID: "u\(index % 10)"),
                    ttl: .seconds(60), expectedVersion: 0)
            }
            // Memory ≈ (k + 1)/n: exactly two copies of each session in the whole cluster.
            #expect(await eventually { stores.map(\.localRecordCount).reduce(0, +) == 400 })
            for store in stores { #expect(store.localRecordCount < 160) }
            for index in stride(from: 0, to: 200, by: 7) {
                let holders = stores[0].holders(of: "s\(index)")
                #expect(holders.count == 2 && Set(holders).count == 2)
                for holder in holders {
                    #expect(stores[Self.index(of: holder)].replica.record(id: "s\(index)") != nil)
                }
                // Any node answers, holder or not.
                for store in stores { #expect(try await store.load(id: "s\(index)")?.payload == [UInt8(index)]) }
            }
            #expect(try await stores[3].sessionIDs(forUser: "u3").count == 20)
            #expect(stores.map(\.localRecordCount).reduce(0, +) == 400)  // reads through kept no copies
            try await stores[1].delete(id: "s5")
            for store in stores { #expect(await eventually { try await store.load(id: "s5") == nil }) }
        }
    }

    @Test func ownerRestartIsServedByTheBackupAndRecoversItsShare() async throws {
        try await Self.withRingCluster(count: 3) { cluster in
            for index in 0..<150 {
                _ = try await cluster[0].save(
                    StoredSession(id: "s\(index)", payload: [1]), ttl: .seconds(60), expectedVersion: nil)
            }
            #expect(await eventually { cluster.stores.map(\.localRecordCount).reduce(0, +) == 300 })
            let held = (0..<150).map { "s\($0)" }.filter { cluster[0].holders(of: $0)[0] == "node-2" }
            #expect(!held.isEmpty)
            await cluster.stop(2)
            // The proxy's next choice for node-2's sessions is their backup, which has them.
            for id in held {
                let backup = cluster[Self.index(of: cluster[0].holders(of: id)[1])]
                #expect(try await backup.save(StoredSession(id: id, payload: [2]), ttl: .seconds(60), expectedVersion: 1) == 2)
            }
            let restarted = try await cluster.restart(2)
            try await restarted.waitUntilReady()
            let share = (0..<150).filter { cluster[0].holders(of: "s\($0)").contains("node-2") }.count
            #expect(restarted.localRecordCount == share)
            for id in held { #expect(try await restarted.load(id: id)?.payload == [2]) }
        }
    }

    @Test func addedNodeServesEverySessionItNowOwns() async throws {
        try await TestCluster<RingSessionStore>.with(make: Self.makeStore, port: { try await $0.listeningPort() }) {
            cluster in
            for _ in 0..<3 { try await cluster.start(peered: true) }
            try await Self.peerBack(cluster)
            for index in 0..<300 {
                _ = try await cluster[index % 3].save(
                    StoredSession(id: "s\(index)", payload: [UInt8(index % 256)]), ttl: .seconds(60),
                    expectedVersion: nil)
            }
            #expect(await eventually { cluster.stores.map(\.localRecordCount).reduce(0, +) == 600 })

            // Scale out: node-3 joins; the others learn about it; nothing is handed off yet when reads start.
            try await cluster.start(peered: true)
            let newcomer = cluster[3]
            try await newcomer.waitUntilReady()
            for store in cluster.stores.prefix(3) { store.addPeer(cluster.peers[3]) }
            #expect(await eventually { newcomer.node.isConnected(to: "node-0") })
            var moved = 0
            for index in 0..<300 {
                let owner = newcomer.holders(of: "s\(index)")[0]
                if owner == "node-3" { moved += 1 }
                let value = try await cluster[Self.index(of: owner)].load(id: "s\(index)")
                #expect(value?.payload == [UInt8(index % 256)], "s\(index) lost via its new owner \(owner)")
            }
            #expect(moved > 20)
            // Hand-off completes and the old holders let go: two copies again, a quarter-ish on the newcomer.
            #expect(await eventually { cluster.stores.map(\.localRecordCount).reduce(0, +) == 600 })
            #expect(newcomer.localRecordCount >= moved)
        }
    }

    @Test func singleNodeStoreIsReadyAndWorksAlone() async throws {
        let store = Self.makeStore(testConfiguration(nodeID: "solo"))
        let task = Task { try await store.run() }
        defer { task.cancel() }
        try await store.waitUntilReady()
        #expect(try await store.save(StoredSession(id: "a", payload: [1]), ttl: .seconds(5), expectedVersion: 0) == 1)
        #expect(try await store.touch(id: "a", ttl: .seconds(10)))
        #expect(try await store.load(id: "a")?.version == 1)
        task.cancel()
        _ = await task.result
    }
}
