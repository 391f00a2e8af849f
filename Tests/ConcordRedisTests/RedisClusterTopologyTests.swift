import NIOCore
import Testing

@testable import ConcordRedis

/// The slot table from `CLUSTER SHARDS` (Redis 7+) and `CLUSTER SLOTS`, parsed from replies captured byte for byte
/// from a cluster built like `RedisClusterFixture` (redis-server 7.0.15, three primaries on ports 41101–41103 made
/// with `redis-cli --cluster create`, plus 41104 added with `--cluster-slave` as a replica of 41101).
@Suite(.timeLimit(.minutes(3))) struct RedisClusterTopologyTests {
    private let seed = RedisEndpoint(host: "127.0.0.1", port: 41101, username: "app", password: "pw")

    private func decode(_ bytes: String) throws -> RESPValue {
        var decoder = RESPDecoder()
        var buffer = ByteBuffer(string: bytes)
        let value = try decoder.decode(buffer: &buffer)
        #expect(buffer.readableBytes == 0)
        return try #require(value)
    }

    @Test func shardsRepliesGiveTheSameTableAsSlots() throws {
        let fromShards = try RedisClusterTopology(clusterShards: decode(Self.shardsRESP2), seed: seed)
        let fromShardsRESP3 = try RedisClusterTopology(clusterShards: decode(Self.shardsRESP3), seed: seed)
        let fromSlots = try RedisClusterTopology(clusterSlots: decode(Self.slotsRESP2), seed: seed)
        // The replica (41104) serves no slot; the three primaries do, with the seed's credentials.
        #expect(Set(fromShards.nodes.map(\.port)) == [41101, 41102, 41103])
        #expect(fromShards.nodes.allSatisfy { $0.host == "127.0.0.1" && $0.password == "pw" && $0.username == "app" })
        let expected = [0: 41101, 5460: 41101, 5461: 41102, 10922: 41102, 10923: 41103, 16383: 41103]
        for (slot, port) in expected { #expect(fromShards.node(forSlot: slot)?.port == port, "slot \(slot)") }
        let differing = (0..<RedisClusterSlot.count).filter {
            fromShards.node(forSlot: $0) != fromShardsRESP3.node(forSlot: $0) || fromShards.node(forSlot: $0) != fromSlots.node(forSlot: $0)
        }
        #expect(differing.isEmpty, "\(differing.count) slots differ, first \(differing.first ?? -1)")
    }

    @Test func failedPrimariesUnknownAddressesAndEmptyShards() throws {
        func node(_ fields: [(String, RESPValue)]) -> RESPValue {
            .map(fields.map { RESPMapEntry(key: .bulkString(ByteBuffer(string: $0.0)), value: $0.1) })
        }
        func text(_ value: String) -> RESPValue { .bulkString(ByteBuffer(string: value)) }
        func shard(_ slots: [Int64], _ nodes: [RESPValue]) -> RESPValue {
            .map([
                RESPMapEntry(key: text("slots"), value: .array(slots.map(RESPValue.integer))),
                RESPMapEntry(key: text("nodes"), value: .array(nodes)),
            ])
        }
        let reply = RESPValue.array([
            // Two ranges; the primary announces no usable endpoint ("?"), so its ip is used.
            shard([0, 99, 200, 299], [
                node([("port", .integer(7001)), ("ip", text("10.0.0.1")), ("endpoint", text("?")), ("role", text("master")),
                      ("health", text("online"))])
            ]),
            // The primary failed; its replica is not promoted yet: these slots stay unassigned.
            shard([100, 199], [
                node([("port", .integer(7002)), ("ip", text("10.0.0.2")), ("endpoint", text("10.0.0.2")), ("role", text("master")),
                      ("health", text("failed"))]),
                node([("port", .integer(7003)), ("ip", text("10.0.0.3")), ("endpoint", text("10.0.0.3")), ("role", text("replica")),
                      ("health", text("online"))]),
            ]),
            // No address at all: the seed's host.
            shard([300, 300], [node([("port", .integer(7004)), ("endpoint", text("")), ("role", text("master"))])]),
            // A node just added: no slots.
            shard([], [node([("port", .integer(7005)), ("ip", text("10.0.0.5")), ("role", text("master"))])]),
        ])
        let topology = try RedisClusterTopology(clusterShards: reply, seed: seed)
        #expect(topology.nodes.map(\.description) == ["10.0.0.1:7001", "127.0.0.1:7004"])
        #expect(topology.node(forSlot: 0)?.port == 7001)
        #expect(topology.node(forSlot: 250)?.port == 7001)
        #expect(topology.node(forSlot: 150) == nil)
        #expect(topology.node(forSlot: 300)?.host == "127.0.0.1")
        #expect(topology.node(forSlot: 301) == nil)
    }

    @Test func malformedShardsRepliesAreTypedErrors() throws {
        func shardsReply(_ bytes: String) throws -> RedisClusterTopology {
            try RedisClusterTopology(clusterShards: decode(bytes), seed: seed)
        }
        let node = "*6\r\n$4\r\nport\r\n:7000\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$2\r\nip\r\n$1\r\nh\r\n"
        for bad in [
            "+OK\r\n",  // not an array
            "*0\r\n",  // no shard serves anything
            "*1\r\n*2\r\n$5\r\nslots\r\n*2\r\n:0\r\n:10\r\n",  // no nodes
            "*1\r\n*4\r\n$5\r\nslots\r\n*1\r\n:0\r\n$5\r\nnodes\r\n*1\r\n" + node,  // odd range list
            "*1\r\n*4\r\n$5\r\nslots\r\n*2\r\n:5\r\n:16384\r\n$5\r\nnodes\r\n*1\r\n" + node,  // slot out of range
            "*1\r\n*4\r\n$5\r\nslots\r\n*2\r\n:9\r\n:3\r\n$5\r\nnodes\r\n*1\r\n" + node,  // end before start
            "*1\r\n*4\r\n$5\r\nslots\r\n*2\r\n:0\r\n:3\r\n$5\r\nnodes\r\n*1\r\n*2\r\n$4\r\nrole\r\n$6\r\nmaster\r\n",  // no port
        ] {
            #expect(throws: RedisClientError.self, "\(bad.debugDescription)") { try shardsReply(bad) }
        }
        // The well-formed variant of the same reply parses.
        #expect(try shardsReply("*1\r\n*4\r\n$5\r\nslots\r\n*2\r\n:0\r\n:3\r\n$5\r\nnodes\r\n*1\r\n" + node).nodes.count == 1)
    }

    // MARK: Captured replies

    static let shardsRESP2 = [
        "*3", "*4", "$5", "slots", "*2", ":10923", ":16383", "$5", "nodes", "*1", "*14", "$2", "id", "$40",
        "dfeea7cbcfed9131ede373f31ea99413191591cb", "$4", "port", ":41103", "$2", "ip", "$9", "127.0.0.1", "$8",
        "endpoint", "$9", "127.0.0.1", "$4", "role", "$6", "master", "$18", "replication-offset", ":0", "$6",
        "health", "$6", "online", "*4", "$5", "slots", "*2", ":0", ":5460", "$5", "nodes", "*2", "*14", "$2", "id",
        "$40", "9bbb121b05801433fd946744804f0cc81bb3eb2d", "$4", "port", ":41101", "$2", "ip", "$9", "127.0.0.1",
        "$8", "endpoint", "$9", "127.0.0.1", "$4", "role", "$6", "master", "$18", "replication-offset", ":14", "$6",
        "health", "$6", "online", "*14", "$2", "id", "$40", "d34e83c658aacd4b1aee5e0a5a2205ff6e7fa7b1", "$4", "port",
        ":41104", "$2", "ip", "$9", "127.0.0.1", "$8", "endpoint", "$9", "127.0.0.1", "$4", "role", "$7", "replica",
        "$18", "replication-offset", ":14", "$6", "health", "$6", "online", "*4", "$5", "slots", "*2", ":5461",
        ":10922", "$5", "nodes", "*1", "*14", "$2", "id", "$40", "1dc75adef59b749a824196a53d0f00f9803f9455", "$4",
        "port", ":41102", "$2", "ip", "$9", "127.0.0.1", "$8", "endpoint", "$9", "127.0.0.1", "$4", "role", "$6",
        "master", "$18", "replication-offset", ":0", "$6", "health", "$6", "online"
    ].joined(separator: "\r\n") + "\r\n"

    static let shardsRESP3 = [
        "*3", "%2", "$5", "slots", "*2", ":10923", ":16383", "$5", "nodes", "*1", "%7", "$2", "id", "$40",
        "dfeea7cbcfed9131ede373f31ea99413191591cb", "$4", "port", ":41103", "$2", "ip", "$9", "127.0.0.1", "$8",
        "endpoint", "$9", "127.0.0.1", "$4", "role", "$6", "master", "$18", "replication-offset", ":0", "$6",
        "health", "$6", "online", "%2", "$5", "slots", "*2", ":0", ":5460", "$5", "nodes", "*2", "%7", "$2", "id",
        "$40", "9bbb121b05801433fd946744804f0cc81bb3eb2d", "$4", "port", ":41101", "$2", "ip", "$9", "127.0.0.1",
        "$8", "endpoint", "$9", "127.0.0.1", "$4", "role", "$6", "master", "$18", "replication-offset", ":14", "$6",
        "health", "$6", "online", "%7", "$2", "id", "$40", "d34e83c658aacd4b1aee5e0a5a2205ff6e7fa7b1", "$4", "port",
        ":41104", "$2", "ip", "$9", "127.0.0.1", "$8", "endpoint", "$9", "127.0.0.1", "$4", "role", "$7", "replica",
        "$18", "replication-offset", ":14", "$6", "health", "$6", "online", "%2", "$5", "slots", "*2", ":5461",
        ":10922", "$5", "nodes", "*1", "%7", "$2", "id", "$40", "1dc75adef59b749a824196a53d0f00f9803f9455", "$4",
        "port", ":41102", "$2", "ip", "$9", "127.0.0.1", "$8", "endpoint", "$9", "127.0.0.1", "$4", "role", "$6",
        "master", "$18", "replication-offset", ":0", "$6", "health", "$6", "online"
    ].joined(separator: "\r\n") + "\r\n"

    static let slotsRESP2 = [
        "*3", "*4", ":0", ":5460", "*4", "$9", "127.0.0.1", ":41101", "$40",
        "9bbb121b05801433fd946744804f0cc81bb3eb2d", "*0", "*4", "$9", "127.0.0.1", ":41104", "$40",
        "d34e83c658aacd4b1aee5e0a5a2205ff6e7fa7b1", "*0", "*3", ":5461", ":10922", "*4", "$9", "127.0.0.1", ":41102",
        "$40", "1dc75adef59b749a824196a53d0f00f9803f9455", "*0", "*3", ":10923", ":16383", "*4", "$9", "127.0.0.1",
        ":41103", "$40", "dfeea7cbcfed9131ede373f31ea99413191591cb", "*0"
    ].joined(separator: "\r\n") + "\r\n"
}
