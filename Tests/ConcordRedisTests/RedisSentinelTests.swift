import ConcordRedis
import ConcordSessions
import ConcordTLSTestSupport
import Foundation
import NIOCore
import NIOPosix
import Synchronization
import Testing

/// Against a real primary, a replica and a sentinel (`redis-server --sentinel`, `down-after-milliseconds 500`).
@Suite(.timeLimit(.minutes(3))) struct RedisSentinelTests {
    /// The three servers; all stopped when `body` ends, also on failure.
    /// `sentinelArguments`: more arguments for the sentinel (its own `--requirepass`).
    private func withSentinelSetup(
        sentinelArguments: [String] = [], _ body: (_ servers: [RedisServerFixture], _ sentinelPort: Int) async throws -> Void
    ) async throws {
        var started: [RedisServerFixture] = []
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("concord-sentinel-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        do {
            // No diskless-sync delay: a replica's first sync starts at once (the default waits 5 s for more replicas).
            let primary = try await RedisServerFixture.start(arguments: ["--repl-diskless-sync-delay", "0"])
            started.append(primary)
            let replica = try await RedisServerFixture.start(arguments: [
                "--replicaof", "127.0.0.1", String(primary.port), "--repl-diskless-sync-delay", "0",
            ])
            started.append(replica)
            try await waitFor("the replica's link to the primary") {
                try await info(replica, "replication").contains("master_link_status:up")
            }
            let configFile = directory.appendingPathComponent("sentinel.conf")
            try """
                sentinel monitor mymaster 127.0.0.1 \(primary.port) 1
                sentinel down-after-milliseconds mymaster 500
                sentinel failover-timeout mymaster 5000

                """.write(to: configFile, atomically: true, encoding: .utf8)
            let sentinel = try await RedisServerFixture.start(arguments: ["--sentinel"] + sentinelArguments, configFile: configFile.path)
            started.append(sentinel)
            if sentinelArguments.isEmpty {
                try await waitFor("the sentinel to find the replica") {
                    let replicas = try await plain(sentinel).send(RedisCommand("SENTINEL", ["REPLICAS", "mymaster"]))
                    return !(replicas.elements ?? []).isEmpty
                }
            }
            try await body([primary, replica], sentinel.port)
        } catch {
            for server in started { await server.stop() }
            try? FileManager.default.removeItem(at: directory)
            throw error
        }
        for server in started { await server.stop() }
        try? FileManager.default.removeItem(at: directory)
    }

    private func plain(_ server: RedisServerFixture) throws -> RedisClient {
        try RedisClient(configuration: .testing(endpoints: [server.endpoint]))
    }

    private func info(_ server: RedisServerFixture, _ section: String) async throws -> String {
        let client = try plain(server)
        defer { client.shutdown() }
        return try await client.send(RedisCommand("INFO", [RedisArgument(section)])).string ?? ""
    }

    /// Polls `condition` every 100 ms for at most 20 s.
    private func waitFor(_ what: String, _ condition: () async throws -> Bool) async throws {
        for _ in 0..<200 {
            if (try? await condition()) == true { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw FixtureError("gave up waiting for \(what) after 20 s")
    }

    /// Saves `session` until a save succeeds (at most 20 s); how long that took.
    private func saveUntilAccepted(_ store: RedisSessionStore, _ session: StoredSession) async throws -> Duration {
        let started = ContinuousClock.now
        try await waitFor("a save to be accepted after the failover") {
            (try? await store.save(session, ttl: .seconds(600), expectedVersion: nil)) != nil
        }
        return ContinuousClock.now - started
    }

    /// How the client learns of a switchover: the `+switch-master` subscription alone (the poll an hour apart), or
    /// the once-a-second poll alone.
    enum Following: Sendable, CaseIterable { case subscription, polling }

    @Test(arguments: Following.allCases) func theStoreFollowsThePrimaryThroughASwitchoverAndACrash(following: Following) async throws {
        try await withSentinelSetup { servers, sentinelPort in
            var configuration = try RedisSessionStoreConfiguration.testing(urls: ["redis-sentinel://127.0.0.1:\(sentinelPort)#mymaster"])
            configuration.client.sentinelSubscription = following == .subscription
            configuration.client.sentinelPollInterval = following == .subscription ? .seconds(3600) : .seconds(1)
            let store = try RedisSessionStore(configuration: configuration)
            defer { store.shutdown() }
            for index in 0..<20 {
                #expect(try await store.save(StoredSession(id: "s\(index)", payload: [UInt8(index)]), ttl: .seconds(600), expectedVersion: 0) == 1)
            }
            // Everything written so far is on the replica before the primary changes. (Not `WAIT` from another
            // connection: it waits only for that connection's own writes.)
            try await waitFor("the replica to hold the 20 sessions") { try await info(servers[1], "keyspace").contains("keys=20,") }

            // A switchover: the sentinel promotes the replica and demotes the old primary (closing its clients).
            let sentinel = try RedisClient(configuration: .testing(endpoints: [RedisEndpoint(host: "127.0.0.1", port: sentinelPort)]))
            defer { sentinel.shutdown() }
            // Refused (NOGOODSLAVE) until the sentinel has the replica's state from its own INFO round.
            try await waitFor("the sentinel to accept the switchover") {
                (try? await sentinel.send(RedisCommand("SENTINEL", ["FAILOVER", "mymaster"]))) != nil
            }
            try await waitFor("the replica to be promoted") { try await info(servers[1], "replication").contains("role:master") }
            let promoted = ContinuousClock.now
            // The old primary takes writes until the sentinel demotes it (about 10 s later, its INFO period), and
            // the demotion drops them (docs/stores-redis.md). The client does not wait for that: it asks the
            // sentinels every second and moves its connections to the primary they name.
            let newPrimary = try plain(servers[1])
            defer { newPrimary.shutdown() }
            var moved = false
            for attempt in 0..<50 where !moved {
                _ = try? await store.save(StoredSession(id: "probe\(attempt)", payload: [0]), ttl: .seconds(600), expectedVersion: nil)
                moved = try await newPrimary.send(.exists(RedisArgument("concord:session:{probe\(attempt)}"))).int == 1
                if !moved { try await Task.sleep(for: .milliseconds(100)) }
            }
            #expect(moved, "no write reached the promoted replica within 5 s")
            print("[RedisSentinelTests] \(following): a write reached the promoted primary \(ContinuousClock.now - promoted) after its promotion was seen")
            #expect(try await info(servers[0], "replication").contains("role:master"), "moved before the old primary's demotion")
            try await waitFor("the old primary to be demoted") { try await info(servers[0], "replication").contains("role:slave") }
            _ = try await saveUntilAccepted(store, StoredSession(id: "after-switchover", payload: [1]))
            #expect(try await newPrimary.send(.exists("concord:session:{after-switchover}")).int == 1, "the write went to the new primary")
            for index in 0..<20 { #expect(try await store.load(id: "s\(index)")?.payload == [UInt8(index)]) }
            guard following == .subscription else { return }  // the crash is the same for both

            // A crash of the new primary: the sentinel fails over back to the first server, once it is in sync.
            let oldPrimary = try plain(servers[0])
            defer { oldPrimary.shutdown() }
            try await waitFor("the old primary to replicate the new one") {
                try await oldPrimary.send(.exists("concord:session:{after-switchover}")).int == 1
            }
            await servers[1].stop(removeDirectory: false)
            let outage = try await saveUntilAccepted(store, StoredSession(id: "after-crash", payload: [2]))
            #expect(try await info(servers[0], "replication").contains("role:master"))
            #expect(try await store.load(id: "after-switchover")?.payload == [1])
            #expect(try await store.load(id: "after-crash")?.payload == [2])
            for index in 0..<20 { #expect(try await store.load(id: "s\(index)")?.payload == [UInt8(index)]) }
            #expect(outage < .seconds(20), "writes were refused for \(outage)")
        }
    }

    /// The port the stand-in sentinel names, changed by the test.
    final class NamedPort: Sendable {
        let port: Mutex<Int>
        init(_ port: Int) { self.port = Mutex(port) }
    }

    /// A stand-in sentinel that names whatever port `primary` holds (one command per connection, as the client asks).
    final class NamingSentinelHandler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let primary: NamedPort

        init(primary: NamedPort) { self.primary = primary }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let port = String(primary.port.withLock { $0 })
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: "*2\r\n$9\r\n127.0.0.1\r\n$\(port.utf8.count)\r\n\(port)\r\n")), promise: nil)
        }
    }

    /// The client leaves a primary that was demoted under it (a `READONLY` reply closes the connection) and never
    /// writes to a node that is not a primary, even when a sentinel still names it (`ROLE` on every new connection).
    @Test func aDemotedPrimaryIsLeftAndAReplicaIsNeverUsed() async throws {
        try await RedisServerFixture.withServer { first in
            try await RedisServerFixture.withServer { second in
                let named = NamedPort(first.port)
                let sentinel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                    .childChannelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHandler(NamingSentinelHandler(primary: named))
                        }
                    }
                    .bind(host: "127.0.0.1", port: 0).get()
                defer { sentinel.close(promise: nil) }
                // One connection, so every command below uses the one the previous left (or its replacement).
                var configuration = try RedisClientConfiguration.testing(urls: ["redis-sentinel://127.0.0.1:\(sentinel.localAddress?.port ?? 0)#m"])
                configuration.maximumConnectionsPerNode = 1
                let client = try RedisClient(configuration: configuration)
                defer { client.shutdown() }
                #expect(try await client.send(.set("k", "1")) == .simpleString("OK"))

                // Demoted without its clients being closed (a sentinel would close them; an operator's REPLICAOF does not).
                _ = try await plain(first).send(RedisCommand("REPLICAOF", ["127.0.0.1", RedisArgument(second.port)]))
                try await waitFor("the demotion") { try await info(first, "replication").contains("role:slave") }
                let readOnly = await sendError(client, .set("k", "2"))
                #expect(readOnly?.serverMessage?.hasPrefix("READONLY") == true, "\(String(describing: readOnly))")
                let refused = await sendError(client, .set("k", "3"))
                #expect(refused?.description.contains("not the master") == true, "\(String(describing: refused))")

                named.port.withLock { $0 = second.port }
                try await waitFor("a write to the new primary") { (try? await client.send(.set("k", "4"))) != nil }
                #expect(try await plain(second).send(.get("k")).string == "4")
            }
        }
    }

    @Test func anUnknownMasterOrNoSentinelIsAClearError() async throws {
        try await withSentinelSetup { _, sentinelPort in
            let client = try RedisClient(configuration: .testing(urls: ["redis-sentinel://127.0.0.1:\(sentinelPort)#nosuch"]))
            defer { client.shutdown() }
            let error = await sendError(client, .ping())
            #expect(error?.description.contains("does not monitor a master named 'nosuch'") == true, "\(String(describing: error))")
        }
        let port = try LoopbackPort.free()
        let client = try RedisClient(configuration: .testing(urls: ["redis-sentinel://127.0.0.1:\(port),127.0.0.1:\(port)#mymaster"]))
        defer { client.shutdown() }
        let error = await sendError(client, .ping())
        #expect(error?.description.contains("no sentinel located master 'mymaster'") == true, "\(String(describing: error))")
    }

    @Test func aSentinelWithItsOwnPasswordIsAskedWithIt() async throws {
        try await checkSentinelCredentials(
            sentinelArguments: ["--requirepass", "s3cret"], accepted: "sentinelPassword=s3cret", refused: nil, refusedWith: "NOAUTH")
    }

    @Test func aSentinelACLUserIsAskedWithItsName() async throws {
        // The password alone is the default user's, which has none here.
        try await checkSentinelCredentials(
            sentinelArguments: ["--user", "watcher", "on", ">w4tch", "~*", "&*", "+@all"],
            accepted: "sentinelUsername=watcher&sentinelPassword=w4tch", refused: "sentinelPassword=w4tch",
            refusedWith: "no sentinel located master 'mymaster'")
    }

    /// A sentinel started with `sentinelArguments` (its own credentials): a client whose URL has the `accepted`
    /// query reaches the primary through it; one with the `refused` query (`nil`: none) gets an error containing
    /// `refusedWith`.
    private func checkSentinelCredentials(
        sentinelArguments: [String], accepted: String, refused: String?, refusedWith: String
    ) async throws {
        try await withSentinelSetup(sentinelArguments: sentinelArguments) { servers, sentinelPort in
            func url(_ query: String?) -> String { "redis-sentinel://127.0.0.1:\(sentinelPort)\(query.map { "?" + $0 } ?? "")#mymaster" }
            let with = try RedisClient(configuration: .testing(urls: [url(accepted)]))
            defer { with.shutdown() }
            #expect(try await with.send(.set("k", "v")) == .simpleString("OK"))
            #expect(try await plain(servers[0]).send(.get("k")).string == "v")
            let without = try RedisClient(configuration: .testing(urls: [url(refused)]))
            defer { without.shutdown() }
            let error = await sendError(without, .ping())
            #expect(error?.description.contains(refusedWith) == true, "\(String(describing: error))")
        }
    }

    /// `rediss-sentinel://`: a primary that speaks only TLS on the port the sentinel names (its plain port is the
    /// fixture's readiness probe) and a sentinel reached over TLS (`tls-replication yes`: it watches the primary
    /// over TLS too). Test certificate a is the servers' certificate and the CA.
    @Test func aTLSSentinelAndItsPrimaryAreReachedOverTLS() async throws {
        try await TestCertificate.withDirectory { directory in
            let a = try TestCertificate.a.write(to: directory, as: "a")
            let b = try TestCertificate.b.write(to: directory, as: "b")
            let tls = ["--tls-cert-file", a.chain, "--tls-key-file", a.key, "--tls-ca-cert-file", a.chain, "--tls-auth-clients", "no"]
            let primaryTLSPort = try LoopbackPort.free()
            let sentinelTLSPort = try LoopbackPort.free()
            let configFile = directory.appendingPathComponent("sentinel.conf")
            try "sentinel monitor mymaster 127.0.0.1 \(primaryTLSPort) 1\n".write(to: configFile, atomically: true, encoding: .utf8)
            try await RedisServerFixture.withServer(arguments: ["--tls-port", String(primaryTLSPort)] + tls) { primary in
                try await RedisServerFixture.withServer(
                    arguments: ["--sentinel", "--tls-port", String(sentinelTLSPort), "--tls-replication", "yes"] + tls,
                    configFile: configFile.path
                ) { sentinel in
                    // The sentinel has reached the primary over TLS (flags other than plain `master` would mean it
                    // has not).
                    try await waitFor("the sentinel to reach the primary over TLS") {
                        let fields = try await plain(sentinel).send(RedisCommand("SENTINEL", ["MASTER", "mymaster"])).elements ?? []
                        guard let index = fields.firstIndex(where: { $0.string == "flags" }), index + 1 < fields.count else { return false }
                        return fields[index + 1].string == "master"
                    }

                    let url = "rediss-sentinel://127.0.0.1:\(sentinelTLSPort)?caFile=\(a.chain)#mymaster"
                    let store = try RedisSessionStore(configuration: try RedisSessionStoreConfiguration.testing(urls: [url]))
                    defer { store.shutdown() }
                    let version = try await store.save(StoredSession(id: "tls", payload: [1, 2]), ttl: .seconds(60), expectedVersion: nil)
                    #expect(try await store.load(id: "tls")?.version == version)
                    // It reached the primary the sentinel named, on the port that speaks only TLS.
                    #expect(try await plain(primary).send(.exists("concord:session:{tls}")) == .integer(1))

                    // Plain RESP to the sentinel's TLS port, and a CA that did not sign the servers' certificate.
                    let plainClient = try RedisClient(configuration: .testing(urls: ["redis-sentinel://127.0.0.1:\(sentinelTLSPort)#mymaster"]))
                    defer { plainClient.shutdown() }
                    let plainError = await sendError(plainClient, .ping())
                    #expect(plainError?.description.contains("no sentinel located master 'mymaster'") == true, "\(String(describing: plainError))")
                    let otherCA = try RedisClient(
                        configuration: .testing(urls: ["rediss-sentinel://127.0.0.1:\(sentinelTLSPort)?caFile=\(b.chain)#mymaster"]))
                    defer { otherCA.shutdown() }
                    let otherCAError = await sendError(otherCA, .ping())
                    #expect(otherCAError?.description.contains("TLS") == true, "\(String(describing: otherCAError))")
                }
            }
        }
    }

    @Test func parsesSentinelURLs() throws {
        let configuration = try RedisClientConfiguration(urls: ["redis-sentinel://app:s%40cret@10.0.0.1,10.0.0.2:26380,[::1]/3#cache"])
        let sentinel = try #require(configuration.sentinel)
        #expect(sentinel.masterName == "cache")
        #expect(
            sentinel.sentinels == [
                RedisEndpoint(host: "10.0.0.1", port: 26379), RedisEndpoint(host: "10.0.0.2", port: 26380),
                RedisEndpoint(host: "::1", port: 26379),
            ])
        #expect(configuration.endpoints.count == 1)
        #expect(configuration.endpoints[0].username == "app")
        #expect(configuration.endpoints[0].password == "s@cret")
        #expect(configuration.endpoints[0].database == 3)
        #expect(!configuration.isCluster)
        // A failover is expected to end an outage: reconnects are retried at most 250 ms apart (2 s otherwise).
        #expect(configuration.maximumReconnectBackoff == .milliseconds(250))
        #expect(try RedisClientConfiguration(urls: ["redis://h"]).maximumReconnectBackoff == .seconds(2))
        let protected = try RedisClientConfiguration(urls: ["redis-sentinel://:data@h1,h2/1?sentinelPassword=p%40ss#m"])
        #expect(protected.sentinel?.sentinels.map(\.password) == ["p@ss", "p@ss"])
        #expect(protected.endpoints[0].password == "data" && protected.endpoints[0].database == 1)
        let acl = try RedisClientConfiguration(urls: ["redis-sentinel://h1,h2?sentinelUsername=w&sentinelPassword=p#m"])
        #expect(acl.sentinel?.sentinels.map(\.username) == ["w", "w"] && acl.endpoints[0].username == nil)
        for url in [
            "redis-sentinel://h1,h2", "redis-sentinel://h1#", "redis-sentinel://h1:x#m", "redis-sentinel://h1?password=x#m",
            "redis-sentinel://h1?sentinelUsername=w#m",
        ] {
            #expect(throws: RedisClientError.self, "\(url)") { try RedisClientConfiguration(urls: [url]) }
        }
        #expect(throws: RedisClientError.self) { try RedisClientConfiguration(urls: ["redis-sentinel://h#m", "redis://h"]) }
        // TLS: the same settings for the sentinels and the primary; TLS parameters need rediss-sentinel://.
        let tls = try RedisClientConfiguration(urls: ["rediss-sentinel://:data@h1,h2:26380?caFile=/ca.pem&serverName=redis&sentinelPassword=p#m"])
        let settings = RedisTLS(caFile: "/ca.pem", serverName: "redis")
        #expect(tls.sentinel?.sentinels.map(\.tls) == [settings, settings])
        #expect(tls.sentinel?.sentinels.map(\.password) == ["p", "p"])
        #expect(tls.endpoints[0].tls == settings && tls.endpoints[0].password == "data")
        #expect(try RedisClientConfiguration(urls: ["rediss-sentinel://h#m"]).endpoints[0].tls == RedisTLS())
        #expect(try RedisClientConfiguration(urls: ["redis-sentinel://h#m"]).endpoints[0].tls == nil)
        for url in ["redis-sentinel://h?caFile=/ca.pem#m", "rediss-sentinel://h?verify=maybe#m", "rediss-sentinel://h?caFile=a&caFile=b#m"] {
            #expect(throws: RedisClientError.self, "\(url)") { try RedisClientConfiguration(urls: [url]) }
        }
    }
}
