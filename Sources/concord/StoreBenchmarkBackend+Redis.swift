import ConcordLab
import ConcordRedis
import ConcordSessions
import Synchronization
import Logging
import NIOPosix
import Foundation

extension StoreBenchmarkBackend {
    /// Redis through ``RedisSessionStore``, compared with `redis-benchmark -t get,set` against the same server.
    /// Without `--url` it starts a private `redis-server` (no persistence) on a free loopback port. Callers run on
    /// the global concurrent executor, as an app's request handlers do.
    static let redis = StoreBenchmarkBackend(name: "redis") { options in
        try await redisTarget(options: options, callersOnEventLoop: false)
    }

    /// The same, with the store's connections on one event loop and the callers running on that loop
    /// (``EventLoopTaskExecutor``): no thread hand-off per command, like `redis-benchmark`'s single C loop.
    static let redisEventLoop = StoreBenchmarkBackend(name: "redis-eventloop") { options in
        try await redisTarget(options: options, callersOnEventLoop: true)
    }

    private static func redisTarget(options: StoreBenchmarkOptions, callersOnEventLoop: Bool) async throws -> StoreBenchmarkTarget {
        let server: RedisBenchmarkServer? = options.url == nil ? try await RedisBenchmarkServer.start() : nil
        let url = options.url ?? "redis://127.0.0.1:\(server!.port)"
        let configuration = try RedisSessionStoreConfiguration(storeURL: url)
        guard !configuration.client.isCluster else {
            throw BenchStoresError("bench stores measures one Redis server (redis-benchmark is run against it); give one URL, not a cluster's seeds")
        }
        let group: MultiThreadedEventLoopGroup? = callersOnEventLoop ? MultiThreadedEventLoopGroup(numberOfThreads: 1) : nil
        let store = try RedisSessionStore(configuration: configuration, eventLoopGroup: group ?? MultiThreadedEventLoopGroup.singleton)
        let endpoint = configuration.client.endpoints[0]
        return StoreBenchmarkTarget(
            store: store,
            peer: { concurrency, operations, payloadSize in
                try await RedisBenchmarkServer.redisBenchmark(
                    endpoint: endpoint, concurrency: concurrency, operations: operations, payloadSize: payloadSize)
            },
            stop: {
                store.shutdown()
                try? await group?.shutdownGracefully()
                await server?.stop()
            },
            callerExecutor: group.map { EventLoopTaskExecutor($0.next()) },
            layers: saveLayers(store: store, endpoint: endpoint, payloadSize: options.payloadSize))
    }

    /// Under a store save: the same record written with a plain `SET` (what `redis-benchmark -t set` does), then
    /// through `EVALSHA` of a script that only returns (Lua's fixed cost), then of the store's compare-and-set
    /// script (the record's header compared and the record replaced, as a save does, minus the store's own work).
    /// Then a logged-in user's save: through the store (on one server the script also adds the session to the
    /// user's index), and as the two round trips a cluster needs (the compare-and-set, then the index script).
    /// Last, `redis-benchmark` itself sends the compare-and-set: what a C client on one connection per caller gets
    /// for the same work, the ceiling of a save on this machine.
    private static func saveLayers(store: RedisSessionStore, endpoint: RedisEndpoint, payloadSize: Int) -> [StoreBenchmarkLayer] {
        let client = store.client
        let payload = [UInt8](repeating: 0x61, count: payloadSize)
        let record = RedisArgument(RedisSessionRecord.record(version: 1, userID: nil, payload: payload))
        let prefix = RedisArgument(RedisSessionRecord.prefix(version: 1, userID: nil))
        let milliseconds = RedisArgument("600000")
        let empty = RedisScript("return ''")
        let versions = Mutex<[Int: UInt64]>([:])
        @Sendable func key(_ caller: Int) -> RedisArgument { RedisArgument("bench-layer-\(caller)") }
        return [
            StoreBenchmarkLayer(name: "client SET of the record") { caller in
                _ = try await client.send(.set(key(caller), record))
            },
            StoreBenchmarkLayer(name: "client EVALSHA of a script that returns ''") { caller in
                _ = try await client.run(empty, keys: [key(caller)], arguments: [prefix, milliseconds, record])
            },
            StoreBenchmarkLayer(name: "client EVALSHA of the store's compare-and-set") { caller in
                _ = try await client.run(
                    RedisSessionRecord.replaceScript, keys: [key(caller)], arguments: [prefix, milliseconds, record])
            },
            StoreBenchmarkLayer(name: "store save of a logged-in session") { caller in
                // Each caller saves its own session at the version its last save returned, as the `save` row does.
                let id = "bench-layer-user-\(caller)"
                let known = versions.withLock { $0[caller] }
                let version = try await store.save(
                    StoredSession(id: id, payload: payload, userID: "bench-user-\(caller)"), ttl: .seconds(600),
                    expectedVersion: known)
                versions.withLock { $0[caller] = version }
            },
            StoreBenchmarkLayer(name: "client: compare-and-set, then index script") { caller in
                let prefix = RedisArgument(RedisSessionRecord.prefix(version: 1, userID: "bench-user-\(caller)"))
                let userRecord = RedisArgument(RedisSessionRecord.record(version: 1, userID: "bench-user-\(caller)", payload: payload))
                _ = try await client.run(
                    RedisSessionRecord.replaceScript, keys: [RedisArgument("bench-layer-pair-\(caller)")],
                    arguments: [prefix, milliseconds, userRecord])
                _ = try await client.run(
                    RedisSessionRecord.indexScript, keys: [RedisArgument("bench-layer-index-\(caller)")],
                    arguments: [RedisArgument("bench-layer-pair-\(caller)"), milliseconds])
            },
            StoreBenchmarkLayer(name: "redis-benchmark EVALSHA of the compare-and-set", ceiling: true) { concurrency, operations in
                // The record's key exists and the script is loaded (its digest is what `SCRIPT LOAD` answers).
                let key = RedisArgument("bench-layer-tool")
                _ = try await client.run(RedisSessionRecord.replaceScript, keys: [key], arguments: [prefix, milliseconds, record])
                guard let sha = try await client.send(.scriptLoad(RedisSessionRecord.replaceScript.source)).string else {
                    throw BenchStoresError("SCRIPT LOAD did not return a digest")
                }
                return try await RedisBenchmarkServer.redisBenchmark(
                    endpoint: endpoint, concurrency: concurrency, operations: operations,
                    command: ["evalsha", sha, "1", String(buffer: key.buffer)]
                        + [prefix, milliseconds, record].map { String(buffer: $0.buffer) })
            },
        ]
    }
}

/// A throwaway `redis-server` for the benchmark, and the `redis-benchmark` runner. The server is a ``LabChild`` in
/// the process's ``ChildRegistry``, so Ctrl-C (or SIGTERM) during the benchmark stops it too.
struct RedisBenchmarkServer: Sendable {
    let port: Int
    private let child: LabChild
    private let directory: URL

    /// Starts on a free loopback port; a server that exits at once (its port was taken after all) is tried again on
    /// another port, twice. On failure the working directory is kept for its `redis.log`.
    static func start() async throws -> RedisBenchmarkServer {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("concord-bench-redis-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let executable = try tool("redis-server").url.path
        var lastPort = 0
        for _ in 0..<3 {
            let port = try LoopbackPort.free()
            lastPort = port
            let child = try LabChild.spawn(
                name: "redis-server", executable: executable,
                arguments: [
                    "--port", String(port), "--bind", "127.0.0.1", "--dir", directory.path, "--save", "", "--appendonly", "no",
                    "--logfile", directory.appendingPathComponent("redis.log").path,
                ],
                logPath: directory.appendingPathComponent("redis.out").path)
            let server = RedisBenchmarkServer(port: port, child: child, directory: directory)
            // Refused connections are expected until the server listens: only real errors are worth a log line here.
            var quiet = Logger(label: "concord.bench.redis-probe")
            quiet.logLevel = .error
            let client = try RedisClient(configuration: RedisClientConfiguration(urls: ["redis://127.0.0.1:\(port)"]), logger: quiet)
            defer { client.shutdown() }
            for _ in 0..<100 {
                if (try? await client.send(.ping())) != nil { return server }
                guard child.isRunning else { break }
                try await Task.sleep(for: .milliseconds(50))
            }
            await child.stop(grace: .zero)
        }
        throw BenchStoresError("redis-server did not start (last on port \(lastPort)); see \(directory.path)/redis.log")
    }

    /// The server keeps nothing worth a clean shutdown.
    func stop() async {
        await child.stop(grace: .zero)
        try? FileManager.default.removeItem(at: directory)
    }

    /// `redis-benchmark -t get,set` with the same concurrency, request count and value size.
    static func redisBenchmark(endpoint: RedisEndpoint, concurrency: Int, operations: Int, payloadSize: Int) async throws
        -> StoreBenchmarkPeerResult
    {
        let rates = try await runRedisBenchmark(
            endpoint: endpoint,
            arguments: ["-t", "get,set", "-c", String(concurrency), "-n", String(operations), "-d", String(payloadSize), "-r", "1000"])
        guard let reads = rates["GET"], let writes = rates["SET"] else {
            throw BenchStoresError("redis-benchmark reported no GET and SET rates: \(rates)")
        }
        return StoreBenchmarkPeerResult(tool: "redis-benchmark", readsPerSecond: reads, writesPerSecond: writes)
    }

    /// `redis-benchmark` sending one given command with the same concurrency and request count; its rate.
    static func redisBenchmark(endpoint: RedisEndpoint, concurrency: Int, operations: Int, command: [String]) async throws -> Double {
        let rates = try await runRedisBenchmark(endpoint: endpoint, arguments: ["-c", String(concurrency), "-n", String(operations)] + command)
        guard rates.count == 1, let rate = rates.values.first else {
            throw BenchStoresError("redis-benchmark reported \(rates.count) rates for one command")
        }
        return rate
    }

    /// Runs `redis-benchmark --csv` against `endpoint`; its requests per second by test name.
    private static func runRedisBenchmark(endpoint: RedisEndpoint, arguments: [String]) async throws -> [String: Double] {
        var all = ["-h", endpoint.host, "-p", String(endpoint.port), "--csv"]
        // The store's database and user too: it ran against database 0 whatever `--url` named (2026-12-03).
        // (redis-benchmark takes a password only as `-a`: other users of this machine can read it in `ps`.)
        if let password = endpoint.password { all += ["-a", password] }
        if let username = endpoint.username, endpoint.password != nil { all += ["--user", username] }
        if endpoint.database != 0 { all += ["--dbnum", String(endpoint.database)] }
        if let tls = endpoint.tls {
            // The same TLS settings as the store's (`--url rediss://…`), so both pay for the same encryption.
            all.append("--tls")
            if let caFile = tls.caFile { all += ["--cacert", caFile] }
            if let chain = tls.certificateChain, let key = tls.privateKey { all += ["--cert", chain, "--key", key] }
            if let serverName = tls.serverName { all += ["--sni", serverName] }
            if !tls.verify { all.append("--insecure") }
        }
        let output = try await tool("redis-benchmark").run(all + arguments)
        var rates: [String: Double] = [:]
        for line in output.split(separator: "\n") {
            let fields = line.split(separator: ",").map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "\"")) }
            if fields.count >= 2, let rate = Double(fields[1]) { rates[fields[0]] = rate }
        }
        guard !rates.isEmpty else { throw BenchStoresError("could not read redis-benchmark's output: \(output)") }
        return rates
    }

    private static func tool(_ name: String) throws -> ExternalTool {
        try ExternalTool(name, installHint: "apt-get install -y redis-server, which also brings redis-benchmark")
    }
}
