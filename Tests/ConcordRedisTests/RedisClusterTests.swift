import ConcordSessions
import ConcordTLSTestSupport
import NIOCore
import Testing

@testable import ConcordRedis

/// Against a real 3-primary cluster. One cluster for the whole suite keeps the test time down.
@Suite(.timeLimit(.minutes(3))) struct RedisClusterTests {
    @Test func storeSpreadsSessionsOverTheClusterAndFollowsRedirections() async throws {
        try await RedisClusterFixture.withCluster { cluster in
            try await resetCommandStatistics(cluster)
            // Only one seed URL with cluster mode on: the client discovers the other primaries itself.
            var configuration = try RedisSessionStoreConfiguration.testing(urls: [cluster.urls[0]])
            configuration.client.cluster = true
            let store = try RedisSessionStore(configuration: configuration)
            defer { store.shutdown() }
            try await sessionsLiveOnEveryNode(store: store, cluster: cluster)
            try await topologyCameFromClusterShards(cluster)
            try await redirectionsAreFollowed(store: store, cluster: cluster)
            try await fallsBackToClusterSlotsWhenShardsIsRefused(cluster)
            #expect(await store.checkAnswers() == nil)
            try await everyNodeGivenAloneIsNamedAtTheStartCheck(cluster)
        }
    }

    /// One node's URL without cluster mode: the start check names a cluster node whichever node it is (before
    /// 2026-12-03 the node that serves the check's own key passed it, and every login there got 503).
    private func everyNodeGivenAloneIsNamedAtTheStartCheck(_ cluster: RedisClusterFixture) async throws {
        for url in cluster.urls {
            let store = try RedisSessionStore(configuration: try RedisSessionStoreConfiguration.testing(urls: [url]))
            defer { store.shutdown() }
            let refusal = await store.checkAnswers()
            #expect(refusal?.isUnavailable == true && "\(refusal!)".contains("this server is a Redis Cluster node"), "\(url): \(String(describing: refusal))")
        }
    }

    /// A cluster reached over TLS (`rediss://` seed, `--tls-cluster yes`): the slot table and redirections name
    /// the nodes' TLS ports, and the nodes the client learns from them inherit the seed's TLS settings.
    @Test func aTLSClusterIsReachedOnItsTLSPorts() async throws {
        try await TestCertificate.withDirectory { directory in
            let files = try TestCertificate.a.write(to: directory)
            try await RedisClusterFixture.withCluster(tls: files) { cluster in
                let seed = try RedisEndpoint(url: "rediss://127.0.0.1:\(cluster.tlsPorts[0])?caFile=\(files.chain)")
                let client = try RedisClient(configuration: .testing(endpoints: [seed]))
                defer { client.shutdown() }
                let shards = try RedisClusterTopology(clusterShards: try await client.send(.clusterShards()), seed: seed)
                let slots = try RedisClusterTopology(clusterSlots: try await client.send(.clusterSlots()), seed: seed)
                let expected = Set(cluster.tlsPorts.map { seed.sibling(host: "127.0.0.1", port: $0) })
                #expect(Set(shards.nodes) == expected)
                #expect(Set(slots.nodes) == expected)
                #expect(shards.nodes.allSatisfy { $0.tls == seed.tls })

                var configuration = try RedisSessionStoreConfiguration.testing(urls: ["rediss://127.0.0.1:\(cluster.tlsPorts[1])?caFile=\(files.chain)"])
                configuration.client.cluster = true
                let store = try RedisSessionStore(configuration: configuration)
                defer { store.shutdown() }
                for index in 0..<30 {
                    #expect(try await store.save(StoredSession(id: "tls\(index)", payload: [UInt8(index)]), ttl: .seconds(60), expectedVersion: 0) == 1)
                }
                for index in 0..<30 { #expect(try await store.load(id: "tls\(index)")?.payload == [UInt8(index)]) }
                for node in cluster.nodes {
                    let plain = try RedisClient(configuration: RedisClientConfiguration.testing(endpoints: [node.endpoint]))
                    defer { plain.shutdown() }
                    #expect(try await plain.send(RedisCommand("DBSIZE")).int ?? 0 > 2, "node \(node.port)")
                }

                // A key another node serves: MOVED names that node's TLS port.
                let connection = try await RedisConnection.connect(to: seed, configuration: .testing(endpoints: [seed]))
                defer { connection.close() }
                let key = try #require((0..<1000).lazy.map { "k\($0)" }.first { shards.node(forSlot: RedisClusterSlot.slot(forKey: $0)) != seed })
                let reply = try await connection.send(.get(RedisArgument(key)))
                guard case .error(let message) = reply, let redirection = RedisClusterRedirection(errorMessage: message) else {
                    Issue.record("expected MOVED, got \(reply)")
                    return
                }
                #expect(cluster.tlsPorts.contains(redirection.port), "\(message)")
            }
        }
    }

    /// How often each node ran `command` (e.g. `cluster|shards`) since the last `CONFIG RESETSTAT`.
    private func calls(of command: String, _ cluster: RedisClusterFixture) async throws -> Int {
        var total = 0
        for node in cluster.nodes {
            let client = try RedisClient(configuration: RedisClientConfiguration.testing(endpoints: [node.endpoint]))
            defer { client.shutdown() }
            let stats = try #require(try await client.send(RedisCommand("INFO", ["commandstats"])).string)
            // cmdstat_cluster|shards:calls=1,usec=…
            for line in stats.split(whereSeparator: \.isNewline) where line.hasPrefix("cmdstat_\(command):calls=") {
                total += Int(line.dropFirst("cmdstat_\(command):calls=".count).prefix { $0.isNumber }) ?? 0
            }
        }
        return total
    }

    private func resetCommandStatistics(_ cluster: RedisClusterFixture) async throws {
        for node in cluster.nodes {
            let client = try RedisClient(configuration: RedisClientConfiguration.testing(endpoints: [node.endpoint]))
            defer { client.shutdown() }
            _ = try await client.send(RedisCommand("CONFIG", ["RESETSTAT"]))
        }
    }

    /// Redis 7 answers `CLUSTER SHARDS`: the client used it, never `CLUSTER SLOTS`, and both give the same table.
    private func topologyCameFromClusterShards(_ cluster: RedisClusterFixture) async throws {
        #expect(try await calls(of: "cluster|shards", cluster) >= 1)
        #expect(try await calls(of: "cluster|slots", cluster) == 0)
        let seed = cluster.nodes[0].endpoint
        let client = try RedisClient(configuration: RedisClientConfiguration.testing(endpoints: [seed]))
        defer { client.shutdown() }
        let shards = try RedisClusterTopology(clusterShards: try await client.send(.clusterShards()), seed: seed)
        let slots = try RedisClusterTopology(clusterSlots: try await client.send(.clusterSlots()), seed: seed)
        #expect(Set(shards.nodes) == Set(cluster.nodes.map(\.endpoint)))
        let differing = (0..<RedisClusterSlot.count).filter { shards.node(forSlot: $0) != slots.node(forSlot: $0) }
        #expect(differing.isEmpty, "\(differing.count) slots differ, first \(differing.first ?? -1)")
    }

    /// Servers that refuse `CLUSTER SHARDS` (before Redis 7, or here an ACL) still work through `CLUSTER SLOTS`.
    private func fallsBackToClusterSlotsWhenShardsIsRefused(_ cluster: RedisClusterFixture) async throws {
        for node in cluster.nodes {
            let client = try RedisClient(configuration: RedisClientConfiguration.testing(endpoints: [node.endpoint]))
            defer { client.shutdown() }
            _ = try await client.send(RedisCommand("ACL", ["SETUSER", "default", "-cluster|shards"]))
            await #expect(throws: RedisClientError.self) { try await client.send(.clusterShards()) }
        }
        try await resetCommandStatistics(cluster)
        var configuration = try RedisSessionStoreConfiguration.testing(urls: [cluster.urls[1]])
        configuration.client.cluster = true
        let store = try RedisSessionStore(configuration: configuration)
        defer { store.shutdown() }
        for index in 0..<12 {
            let session = StoredSession(id: "fallback\(index)", payload: [UInt8(index)])
            #expect(try await store.save(session, ttl: .seconds(60), expectedVersion: 0) == 1)
            #expect(try await store.load(id: "fallback\(index)")?.payload == [UInt8(index)])
        }
        #expect(try await calls(of: "cluster|slots", cluster) >= 1)
    }

    private func sessionsLiveOnEveryNode(store: RedisSessionStore, cluster: RedisClusterFixture) async throws {
        for index in 0..<60 {
            let session = StoredSession(id: "sid\(index)", payload: Array("p\(index)".utf8), userID: "user\(index % 4)")
            #expect(try await store.save(session, ttl: .seconds(60), expectedVersion: 0) == 1)
        }
        for index in 0..<60 {
            #expect(try await store.load(id: "sid\(index)")?.payload == Array("p\(index)".utf8))
            #expect(try await store.version(id: "sid\(index)") == 1)
        }
        for node in cluster.nodes {
            let client = try RedisClient(configuration: RedisClientConfiguration.testing(endpoints: [node.endpoint]))
            defer { client.shutdown() }
            let keys = try #require(try await client.send(RedisCommand("DBSIZE")).int)
            #expect(keys > 5, "node \(node.port) holds \(keys) keys")
        }
        // A user's index usually sits on another node than their sessions.
        #expect(try await store.sessionIDs(forUser: "user1").count == 15)
        #expect(try await store.deleteAll(forUser: "user1") == 15)
        #expect(try await store.load(id: "sid1") == nil)
        #expect(try await store.touch(id: "sid2", ttl: .seconds(120)))
        await #expect(throws: SessionStoreError.self) {
            try await store.save(StoredSession(id: "sid2", payload: []), ttl: .seconds(60), expectedVersion: 0)
        }
    }

    /// Migrates one slot by hand (`CLUSTER SETSLOT … IMPORTING/MIGRATING`, `MIGRATE`, `SETSLOT … NODE`): while it
    /// migrates the client gets ASK for a key not yet moved, afterwards MOVED; both must be transparent.
    private func redirectionsAreFollowed(store: RedisSessionStore, cluster: RedisClusterFixture) async throws {
        let id = "migrating"
        let key = "concord:session:{\(id)}"
        let slot = RedisClusterSlot.slot(forKey: key)
        _ = try await store.save(StoredSession(id: id, payload: [9]), ttl: .seconds(60), expectedVersion: 0)

        var direct: [RedisClient] = []
        defer { for client in direct { client.shutdown() } }
        var ids: [String] = []
        var source = -1
        for (index, node) in cluster.nodes.enumerated() {
            let client = try RedisClient(configuration: RedisClientConfiguration.testing(endpoints: [node.endpoint]))
            direct.append(client)
            ids.append(try #require(try await client.send(RedisCommand("CLUSTER", ["MYID"])).string))
            let count = try await client.send(RedisCommand("CLUSTER", ["COUNTKEYSINSLOT", RedisArgument(slot)])).int
            if count == 1 { source = index }
        }
        try #require(source >= 0)
        let target = (source + 1) % cluster.nodes.count
        _ = try await direct[target].send(RedisCommand("CLUSTER", ["SETSLOT", RedisArgument(slot), "IMPORTING", RedisArgument(ids[source])]))
        _ = try await direct[source].send(RedisCommand("CLUSTER", ["SETSLOT", RedisArgument(slot), "MIGRATING", RedisArgument(ids[target])]))

        // A new session in the migrating slot is absent from the source: the source answers ASK.
        let newID = try #require((0..<100_000).lazy.map { "m\($0)" }.first {
            RedisClusterSlot.slot(forKey: "concord:session:{\($0)}") == slot && $0 != id
        })
        #expect(try await store.save(StoredSession(id: newID, payload: [1]), ttl: .seconds(60), expectedVersion: 0) == 1)
        #expect(try await store.load(id: newID)?.payload == [1])

        _ = try await direct[source].send(
            RedisCommand("MIGRATE", ["127.0.0.1", RedisArgument(cluster.nodes[target].port), RedisArgument(key), "0", "5000"]))
        for client in direct {
            _ = try await client.send(RedisCommand("CLUSTER", ["SETSLOT", RedisArgument(slot), "NODE", RedisArgument(ids[target])]))
        }
        // The client's table still names the source: it gets MOVED and follows it.
        #expect(try await store.load(id: id)?.payload == [9])
        #expect(try await store.save(StoredSession(id: id, payload: [10]), ttl: .seconds(60), expectedVersion: 1) == 2)
        #expect(try await direct[target].send(.exists(RedisArgument(key))).int == 1)
    }
}
