import ConcordSessions
import class ConcordSessionsTesting.ThreadHold  // only these: the replication tests have their own `eventually`
import enum ConcordSessionsTesting.OpenTCPSockets
import Foundation
import NIOCore
import NIOPosix
import Synchronization
import Testing

@testable import ConcordReplication

@Suite(.timeLimit(.minutes(3))) struct SyncSessionStoreTests {
    /// Starts `count` sync nodes, each joining the ones before it, then peers the earlier ones back.
    static func withSyncCluster(count: Int, _ body: (TestCluster<SyncSessionStore>) async throws -> Void) async throws {
        try await TestCluster<SyncSessionStore>.with(
            // A generous miss-read timeout: a loaded test machine must not turn a slow peer answer into "missing".
            make: { SyncSessionStore(configuration: $0, missReadTimeout: .seconds(5), logger: testLogger) },
            port: { try await $0.listeningPort() }
        ) { cluster in
            for _ in 0..<count { try await cluster.start(peered: true) }
            let peers = cluster.peers
            for (index, store) in cluster.stores.enumerated() {
                for peer in peers[(index + 1)...] where !store.peers.contains(peer) { store.addPeer(peer) }
                try await store.waitUntilReady()
            }
            try await body(cluster)
        }
    }

    @Test func writesTouchesAndDeletesReachEveryPeer() async throws {
        try await Self.withSyncCluster(count: 3) { cluster in
            let writer = cluster[1]
            for index in 0..<50 {
                _ = try await writer.save(
                    StoredSession(id: "s\(index)", payload: [UInt8(index)], userID: "u\(index % 5)"),
                    ttl: .seconds(60), expectedVersion: 0)
            }
            for store in cluster.stores {
                #expect(await eventually { try await store.load(id: "s49")?.payload == [49] })
                #expect(try await store.load(id: "s7")?.version == 1)
                #expect(try await store.sessionIDs(forUser: "u2").count == 10)
            }
            #expect(try await cluster[2].save(StoredSession(id: "s0", payload: [99]), ttl: .seconds(60), expectedVersion: 1) == 2)
            try await cluster[0].delete(id: "s1")
            for store in cluster.stores {
                #expect(await eventually { try await store.load(id: "s0")?.payload == [99] })
                #expect(await eventually { try await store.load(id: "s1") == nil })
            }
            #expect(cluster[1].statistics.bytesSent > 0)
        }
    }

    /// Read your writes across nodes: a session saved on one node is found on another at once (a login whose
    /// redirect a round-robin proxy sends to the other node), even before replication has delivered it — the node
    /// without a copy asks its peers.
    @Test func aSessionSavedOnOneNodeIsFoundOnAnotherAtOnce() async throws {
        try await Self.withSyncCluster(count: 2) { cluster in
            #expect(await eventually { cluster[1].node.isConnected(to: cluster[0].configuration.nodeID) })
            var missing: [String] = []
            for index in 0..<200 {
                let id = "login-\(index)"
                _ = try await cluster[0].save(StoredSession(id: id, payload: [7]), ttl: .seconds(60), expectedVersion: 0)
                if try await cluster[1].load(id: id)?.payload != [7] { missing.append(id) }
            }
            #expect(missing.isEmpty, "not found on the other node right after the save: \(missing.prefix(10))")
            #expect(try await cluster[1].load(id: "never-saved") == nil)
        }
    }

    /// Both ends of a peer link have `TCP_NODELAY`, not `SO_DEBUG` (the same option number at the socket level,
    /// which only root may set: every link of a node run by another user failed on it).
    @Test func peerLinksHaveNoDelayAndNotDebug() async throws {
        try await Self.withSyncCluster(count: 2) { cluster in
            #expect(await eventually { cluster[1].node.isConnected(to: cluster[0].configuration.nodeID) })
            let port = cluster.peers[0].port
            let sockets = OpenTCPSockets.matching(localPort: port) + OpenTCPSockets.matching(peerPort: port)
            #expect(sockets.count >= 2, "\(sockets)")
            for socket in sockets { #expect(socket.noDelay && !socket.debug, "\(socket)") }
        }
    }

    @Test func loadsOfUnknownSessionsAskThePeersAFewAtATime() async throws {
        // node-1 runs on a loop of its own, which the test holds: connected, but answering nothing until released.
        let stalled = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            try await Self.askAFewAtATime(stalled: stalled)
        } catch {
            try? await stalled.shutdownGracefully()
            throw error
        }
        try await stalled.shutdownGracefully()
    }

    private static func askAFewAtATime(stalled: MultiThreadedEventLoopGroup) async throws {
        let missReadTimeout = Duration.seconds(2)
        try await TestCluster<SyncSessionStore>.with(
            make: { configuration in
                SyncSessionStore(
                    configuration: configuration,
                    eventLoopGroup: configuration.nodeID == "node-1" ? stalled : MultiThreadedEventLoopGroup.singleton,
                    maximumConcurrentMissReads: 2, missReadTimeout: missReadTimeout, logger: testLogger)
            },
            port: { try await $0.listeningPort() }
        ) { cluster in
            try await cluster.start(peered: true)
            try await cluster.start(peered: true)
            let asking = cluster[0]
            asking.addPeer(cluster.peers[1])
            try await asking.waitUntilReady()
            #expect(await eventually { asking.node.isConnected(to: "node-1") })
            // Held until the test releases it (at most 30 s), not for a fixed time a loaded machine could overrun.
            let hold = ThreadHold()
            stalled.next().execute { hold.block(atMostSeconds: 30) }
            defer { hold.release() }
            #expect(await eventually(timeout: .seconds(10)) { hold.isHolding })
            let start = ContinuousClock.now
            let results = try await withThrowingTaskGroup(of: StoredSession?.self) { group in
                for index in 0..<6 { group.addTask { try await asking.load(id: "nobody-has-\(index)") } }
                return try await group.reduce(into: [StoredSession?]()) { $0.append($1) }
            }
            let elapsed = ContinuousClock.now - start
            #expect(results.allSatisfy { $0 == nil })
            // Two loads waited for the stalled peer (up to missReadTimeout); the other four answered at once.
            #expect(asking.statistics.missReadsSkipped == 4, "skipped: \(asking.statistics.missReadsSkipped)")
            // The peer is still held: only the timeout can have ended the two loads that asked it.
            #expect(hold.isHolding && elapsed >= missReadTimeout, "the loads took \(elapsed)")
            hold.release()
            // With the peer answering again, a load of an unknown session asks it again (the slots were freed).
            _ = try await cluster[1].save(StoredSession(id: "late", payload: [1]), ttl: .seconds(60), expectedVersion: nil)
            #expect(await eventually { try await asking.load(id: "late") != nil })
            _ = try await asking.load(id: "still-nobody")
            #expect(asking.statistics.missReadsSkipped == 4)
        }
    }

    @Test func concurrentWritersConvergeToOneValue() async throws {
        try await Self.withSyncCluster(count: 3) { cluster in
            let stores = cluster.stores
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (index, store) in stores.enumerated() {
                    group.addTask {
                        for round in 0..<40 {
                            _ = try await store.save(
                                StoredSession(id: "shared-\(round % 4)", payload: [UInt8(index), UInt8(round)]),
                                ttl: .seconds(60), expectedVersion: nil)
                        }
                    }
                }
                try await group.waitForAll()
            }
            for key in 0..<4 {
                let converged = await eventually {
                    let values = try await stores.asyncMap { try await $0.load(id: "shared-\(key)") }
                    return values.allSatisfy { $0 != nil && $0 == values[0] }
                }
                #expect(converged, "shared-\(key) did not converge")
            }
        }
    }

    @Test func restartedNodeRecoversStateBeforeReportingReady() async throws {
        try await Self.withSyncCluster(count: 3) { cluster in
            for index in 0..<100 {
                _ = try await cluster[0].save(
                    StoredSession(id: "before-\(index)", payload: [1]), ttl: .seconds(60), expectedVersion: nil)
            }
            #expect(await eventually { try await cluster[2].load(id: "before-99") != nil })
            await cluster.stop(2)
            // Written while node 2 is down: it must still end up with these.
            for index in 0..<20 {
                _ = try await cluster[1].save(
                    StoredSession(id: "during-\(index)", payload: [2]), ttl: .seconds(60), expectedVersion: nil)
            }
            try await cluster[0].delete(id: "before-0")
            let restarted = try await cluster.restart(2)
            #expect(!restarted.isReady || restarted.localRecordCount > 0)
            try await restarted.waitUntilReady()
            #expect(restarted.localRecordCount >= 120)
            #expect(try await restarted.load(id: "before-50") != nil)
            #expect(try await restarted.load(id: "during-19")?.payload == [2])
            #expect(try await restarted.load(id: "before-0") == nil)
            // And it takes part again: its writes reach the others.
            _ = try await restarted.save(StoredSession(id: "after", payload: [3]), ttl: .seconds(60), expectedVersion: nil)
            #expect(await eventually { try await cluster[0].load(id: "after") != nil })
        }
    }

    @Test func aNodeThatCannotBindFailsItsReadinessWaiters() async throws {
        let occupier = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0).get()
        let port = try #require(occupier.localAddress?.port)
        let store = SyncSessionStore(configuration: testConfiguration(nodeID: "blocked", port: port), logger: testLogger)
        let run = Task { try await store.run() }
        // Without the failure reaching them, waiters would hang forever on a node that never starts.
        await #expect(throws: (any Error).self) { try await store.waitUntilReady() }
        #expect(!store.isReady)
        _ = await run.result
        try await occupier.close()
    }

    /// A node stopped while peers' connections are still arriving. NIO's async `bind` can drop a connection it
    /// accepted at that moment; wrapped the usual way, a dropped connection traps the whole process ("Deinited
    /// NIOAsyncWriter without calling finish()" — it crashed a CI run of this suite). Without the fix in
    /// `ReplicationChannel.configure(…accepted:)` this test crashes in most runs; with it the node stops cleanly.
    @Test func cancellingANodeWhileConnectionsArriveStopsItWithoutATrap() async throws {
        var connected = 0
        // At least 8 rounds, more (up to 30) while no connect has got through: on a loaded machine the
        // cancellation can win every race of a few rounds, and then the race was not exercised at all.
        for round in 0..<30 where round < 8 || connected == 0 {
            let store = SyncSessionStore(configuration: testConfiguration(nodeID: "burst-\(round)"), logger: testLogger)
            let ended = Mutex(false)
            let run = Task {
                try? await store.run()
                ended.withLock { $0 = true }
            }
            let port = try await store.listeningPort()
            // A burst of connects in flight, then the cancellation at once.
            let connects = (0..<64).map { _ in
                ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: port)
            }
            run.cancel()
            let stopped = await eventually { ended.withLock { $0 } }
            #expect(stopped, "round \(round): the node did not stop within 5 s of its cancellation")
            for connect in connects {
                guard let channel = try? await connect.get() else { continue }
                connected += 1
                try? await channel.close().get()
            }
        }
        #expect(connected > 0, "no connection reached a node: the race was not exercised")
    }

    @Test func peerSendingGarbageIsCutOffAndOthersKeepWorking() async throws {
        try await Self.withSyncCluster(count: 3) { cluster in
            let target = cluster[0]
            let port = try await target.listeningPort()
            for garbage in [[UInt8](repeating: 0xFF, count: 16), Array("GET / HTTP/1.1\r\n\r\n".utf8)] {
                let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                    .connect(host: "127.0.0.1", port: port).get()
                try await channel.writeAndFlush(ByteBuffer(bytes: garbage)).get()
                // The node closes the connection; bounded wait.
                let closed = await eventually { !channel.isActive }
                #expect(closed)
                try? await channel.close().get()
            }
            // The client can see the close before the node's connection task has handled the error and counted it.
            #expect(await eventually { target.statistics.peersCutOff >= 2 }, "cut off: \(target.statistics.peersCutOff)")
            _ = try await cluster[1].save(StoredSession(id: "still", payload: [1]), ttl: .seconds(60), expectedVersion: nil)
            #expect(await eventually { try await target.load(id: "still") != nil })
            _ = try await target.save(StoredSession(id: "still-2", payload: [1]), ttl: .seconds(60), expectedVersion: nil)
            #expect(await eventually { try await cluster[2].load(id: "still-2") != nil })
        }
    }

    /// A connection to the replication port that never says hello — nothing at all, or half a frame — is closed
    /// after `helloTimeout` (it used to stay open as long as the other side liked), and the node logs where it
    /// came from.
    @Test func aConnectionWithoutAHelloIsClosedAfterTheHelloTimeout() async throws {
        try await TestCluster<SyncSessionStore>.with(
            make: { configuration in
                var configuration = configuration
                configuration.helloTimeout = .milliseconds(300)
                return SyncSessionStore(configuration: configuration, logger: testLogger)
            },
            port: { try await $0.listeningPort() }
        ) { cluster in
            try await cluster.start(peered: false)
            let port = try await cluster[0].listeningPort()
            for opening in [[UInt8](), [0, 0, 0, 16]] {
                let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                    .connect(host: "127.0.0.1", port: port).get()
                if !opening.isEmpty { try await channel.writeAndFlush(ByteBuffer(bytes: opening)).get() }
                // 10 s for a 300-ms deadline: once (CI, 2026-12-03 06:30, the suite's 97 suites in parallel beside a
                // build on 2 cores) 5 s was not enough; 6 runs alone took 0.63–0.67 s each.
                let closed = await eventually(timeout: .seconds(10)) { !channel.isActive }
                #expect(closed, "a connection that sent \(opening) without a hello is still open")
                try? await channel.close().get()
            }
        }
    }

    /// With a shared secret, nodes that know it replicate as before, and a caller that does not — a plain hello,
    /// a wrong secret — is cut off before it is served anything (without one, anyone who reached the port could ask
    /// for every session).
    @Test func aSharedSecretKeepsOutCallersWithoutIt() async throws {
        let secret = Array("correct horse battery staple".utf8)
        try await TestCluster<SyncSessionStore>.with(
            make: { configuration in
                var configuration = configuration
                configuration.sharedSecret = secret
                return SyncSessionStore(configuration: configuration, missReadTimeout: .seconds(5), logger: testLogger)
            },
            port: { try await $0.listeningPort() }
        ) { cluster in
            for _ in 0..<2 { try await cluster.start(peered: true) }
            cluster[0].addPeer(cluster.peers[1])
            for store in cluster.stores { try await store.waitUntilReady() }
            _ = try await cluster[0].save(StoredSession(id: "secret-ok", payload: [1]), ttl: .seconds(60), expectedVersion: nil)
            #expect(await eventually { cluster[1].replica.record(id: "secret-ok") != nil }, "nodes with the secret replicate")

            let port = try await cluster[0].listeningPort()
            let before = cluster[0].statistics.peersCutOff
            for hello in [ReplicationMessage.hello(nodeID: "intruder"),
                          ReplicationHelloProof.hello(nodeID: "intruder", secret: Array("another secret, also long".utf8))] {
                let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                    .connect(host: "127.0.0.1", port: port).get()
                var bytes = ByteBuffer()
                ReplicationFrameEncoder.encode(hello, into: &bytes)
                ReplicationFrameEncoder.encode(.stateRequest(requestID: 1), into: &bytes)
                try await channel.writeAndFlush(bytes).get()
                #expect(await eventually { !channel.isActive }, "\(hello.kindName): still connected")
                try? await channel.close().get()
            }
            #expect(await eventually { cluster[0].statistics.peersCutOff >= before + 2 }, "cut off: \(cluster[0].statistics.peersCutOff)")
        }
    }

    @Test func removedPeerNoLongerReceivesWrites() async throws {
        try await Self.withSyncCluster(count: 3) { cluster in
            let removed = cluster.peers[2]
            cluster[0].removePeer(id: removed.id)
            #expect(!cluster[0].peers.contains(removed))
            _ = try await cluster[0].save(StoredSession(id: "x", payload: [1]), ttl: .seconds(60), expectedVersion: nil)
            #expect(await eventually { try await cluster[1].load(id: "x") != nil })
            try await Task.sleep(for: .milliseconds(100))
            // Nothing was pushed to it (a `load` there would still find "x": a node asks its peers on a miss).
            #expect(cluster[2].replica.record(id: "x") == nil)
        }
    }
}

extension Sequence where Element: Sendable {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var results: [T] = []
        for element in self { results.append(try await transform(element)) }
        return results
    }
}
