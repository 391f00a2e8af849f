import ConcordRedis
import ConcordSessions
import Foundation

/// A real 3-primary Redis Cluster on loopback: three `redis-server --cluster-enabled yes` joined with
/// `redis-cli --cluster create … --cluster-yes`. Use ``withCluster(_:)`` so every node is stopped on failure too.
struct RedisClusterFixture: Sendable {
    let nodes: [RedisServerFixture]

    var urls: [String] { nodes.map(\.url) }

    static func withCluster<T>(_ body: (RedisClusterFixture) async throws -> T) async throws -> T {
        var nodes: [RedisServerFixture] = []
        do {
            for _ in 0..<3 {
                nodes.append(
                    try await RedisServerFixture.start(arguments: [
                        "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "15000",  // no test fails a node over; a starved process must not be marked failed
                    ]))
            }
            let cluster = RedisClusterFixture(nodes: nodes)
            try await cluster.create()
            let result = try await body(cluster)
            for node in nodes { await node.stop() }
            return result
        } catch {
            for node in nodes { await node.stop() }
            throw error
        }
    }

    /// Joins the nodes and waits (at most 15 s) until every node reports `cluster_state:ok`.
    private func create() async throws {
        let process = Process()
        process.executableURL = try RedisServerFixture.binary("redis-cli")
        process.arguments = ["--cluster", "create"] + nodes.map { "127.0.0.1:\($0.port)" } + ["--cluster-replicas", "0", "--cluster-yes"]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        InheritedDescriptors.markCloseOnExec()
        try process.run()
        for _ in 0..<300 where process.isRunning { try await Task.sleep(for: .milliseconds(50)) }
        if process.isRunning { process.terminate() }
        // Its exit status is not read: Foundation's `terminationReason` trapped once ("still running") right after
        // `isRunning` turned false. Whether the cluster formed is checked on the nodes below, which is what counts.
        let text = String(decoding: output.fileHandleForReading.availableData, as: UTF8.self)
        for node in nodes {
            let client = try RedisClient(configuration: RedisClientConfiguration.testing(endpoints: [node.endpoint]))
            defer { client.shutdown() }
            var ready = false
            for _ in 0..<300 {
                if let info = try? await client.send(RedisCommand("CLUSTER", ["INFO"])).string,
                    info.contains("cluster_state:ok")
                {
                    ready = true
                    break
                }
                try await Task.sleep(for: .milliseconds(50))
            }
            guard ready else {
                throw FixtureError("cluster node \(node.port) did not reach cluster_state:ok in 15 s; redis-cli said: \(text)")
            }
        }
    }
}
