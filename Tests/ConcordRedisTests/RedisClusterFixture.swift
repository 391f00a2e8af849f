import ConcordRedis
import ConcordSessions
import Foundation

/// A real 3-primary Redis Cluster on loopback: three `redis-server --cluster-enabled yes` joined with
/// `redis-cli --cluster create … --cluster-yes`. Use ``withCluster(tls:_:)`` so every node is stopped on failure too.
///
/// With `tls` (a certificate and key every node presents and trusts), each node also listens with TLS
/// (`--tls-port`, in ``tlsPorts``) and the cluster bus and announced ports are TLS ones (`--tls-cluster yes`); the
/// plain ports stay open for the fixture's own probes.
struct RedisClusterFixture: Sendable {
    let nodes: [RedisServerFixture]
    let tlsPorts: [Int]
    let tls: (chain: String, key: String)?

    var urls: [String] { nodes.map(\.url) }

    static func withCluster<T>(tls: (chain: String, key: String)? = nil, _ body: (RedisClusterFixture) async throws -> T) async throws -> T {
        var nodes: [RedisServerFixture] = []
        var tlsPorts: [Int] = []
        do {
            for _ in 0..<3 {
                let arguments = [
                    "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "15000",  // no test fails a node over; a starved process must not be marked failed
                ]
                guard let tls else {
                    nodes.append(try await RedisServerFixture.start(arguments: arguments))
                    continue
                }
                // The bus listens on the TLS port + 10000 with --tls-cluster; a port free when probed can be taken
                // before the server binds it, so a node that fails to start gets other ports.
                var lastError: any Error = FixtureError("no TLS cluster node started")
                var started = false
                for _ in 0..<3 where !started {
                    let port = try await RedisServerFixture.freeClusterPort()
                    let tlsArguments = [
                        "--tls-port", String(port), "--tls-cert-file", tls.chain, "--tls-key-file", tls.key,
                        "--tls-ca-cert-file", tls.chain, "--tls-cluster", "yes", "--tls-auth-clients", "no",
                    ]
                    do {
                        nodes.append(try await RedisServerFixture.start(arguments: arguments + tlsArguments))
                        tlsPorts.append(port)
                        started = true
                    } catch {
                        lastError = error
                    }
                }
                if !started { throw lastError }
            }
            let cluster = RedisClusterFixture(nodes: nodes, tlsPorts: tlsPorts, tls: tls)
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
        // Over TLS, by the TLS ports: `CLUSTER MEET` derives each node's bus port from the port it is given.
        let addresses = tls == nil ? nodes.map { "127.0.0.1:\($0.port)" } : tlsPorts.map { "127.0.0.1:\($0)" }
        process.arguments =
            ["--cluster", "create"] + addresses + ["--cluster-replicas", "0", "--cluster-yes"]
            + (tls.map { ["--tls", "--cacert", $0.chain] } ?? [])
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
