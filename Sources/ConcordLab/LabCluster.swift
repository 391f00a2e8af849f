import ConcordSessions
import Foundation
import Logging
import NIOHTTP1

#if canImport(Glibc)
import Glibc
#endif

/// The processes that serve one strategy: N `concord app` nodes on loopback, `concord proxy` in front of them in
/// the balancing mode the strategy needs, and the events the scenario injects (restart, crash, scale out/in).
/// Every child it starts is stopped by ``stopAll()``, which the lab calls on success and on failure alike.
public actor LabCluster {
    /// One app node: its identity and port stay the same across restarts.
    struct Node {
        var id: String
        var port: Int
        var replicationPort: Int
        var child: LabChild
        /// The node's intranet-bytes counter at the last scrape (it starts again at 0 after a restart).
        var lastIntranetBytes = 0
    }

    public let strategy: LabStrategy
    public let configuration: LabConfiguration
    /// The `concord` executable.
    public let executable: String
    /// Where logs and the SQLite store go.
    public let workDirectory: String
    /// Whether `concord proxy` exists in this build; without it the lab balances round-robin itself.
    public let proxyAvailable: Bool
    public nonisolated let entry: LabEntryPoint
    private let logger: Logger
    private let sessionKey: String
    /// The nodes' `--admin-token` (through the environment), for the peer changes of scale-out and scale-in.
    private let adminToken: String
    /// The nodes' `--replication-secret` (through the environment): replication in the lab runs authenticated.
    private let replicationSecret: String

    private var nodes: [Node] = []
    private var nextNodeNumber = 1
    private var proxy: LabChild?
    private var proxyPort = 0
    /// How many scenario commands this cluster has run (each `command` phase one; their logs are numbered).
    private var commandRuns = 0
    /// How many proxies this cluster has run (a proxy-upgrade phase starts the next).
    private var proxyGenerations = 1
    private var adminPort = 0
    /// The store the nodes share (`store` strategies): the configured one, or an SQLite file in the work directory.
    private var storeURL: String? {
        strategy.usesStore ? configuration.storeURL ?? "sqlite:\(workDirectory)/store.sqlite" : nil
    }

    public init(
        strategy: LabStrategy, configuration: LabConfiguration, executable: String, workDirectory: String,
        proxyAvailable: Bool, logger: Logger
    ) {
        self.strategy = strategy
        self.configuration = configuration
        self.executable = executable
        self.workDirectory = workDirectory
        self.proxyAvailable = proxyAvailable
        self.logger = logger
        self.entry = LabEntryPoint(nodePorts: [])
        var key = [UInt8](repeating: 0, count: 32)
        for index in key.indices { key[index] = UInt8.random(in: 0...255) }
        self.sessionKey = Data(key).base64EncodedString()
        self.adminToken = Data((0..<24).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
        self.replicationSecret = Data((0..<24).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
    }

    /// Node ids now serving, in order.
    public var nodeIDs: [String] { nodes.map(\.id) }

    /// How users are balanced in this run, for the report.
    public nonisolated var balancingDescription: String {
        proxyAvailable
            ? "concord proxy, \(strategy.balancing.rawValue)"
            : "lab round-robin over the nodes (concord proxy not available)"
    }

    // MARK: Start and stop

    public func start() async throws {
        try FileManager.default.createDirectory(atPath: workDirectory, withIntermediateDirectories: true)
        var planned: [(id: String, port: Int, replicationPort: Int)] = []
        for _ in 0..<configuration.nodes {
            let port = try LoopbackPort.free()
            planned.append((nodeID(number: nextNodeNumber, port: port), port, try LoopbackPort.free()))
            nextNodeNumber += 1
        }
        // Nodes start one after the other: a replicating node reports ready after its state transfer from peers.
        for plan in planned {
            let peers = planned.filter { $0.id != plan.id }.map { "\($0.id)@127.0.0.1:\($0.replicationPort)" }
            try await launchNode(id: plan.id, port: plan.port, replicationPort: plan.replicationPort, peers: peers)
        }
        if proxyAvailable {
            try await launchProxy()
            entry.replaceNodePorts([proxyPort])
        } else {
            entry.replaceNodePorts(nodes.map(\.port))
        }
    }

    /// Stops every child (proxy first, so no request reaches a stopping node), waiting for each to exit.
    public func stopAll() async {
        if let proxy { await proxy.stop() }
        proxy = nil
        let delayed = configuration.shutdownDelaySeconds > 0
        await withTaskGroup(of: Void.self) { group in
            for node in nodes {
                group.addTask {
                    if delayed {
                        // A node with a shutdown delay stops at once on a second signal (nothing is measured now).
                        node.child.send(SIGTERM)
                        try? await Task.sleep(for: .milliseconds(300))
                    }
                    await node.child.stop()
                }
            }
        }
        nodes = []
    }

    // MARK: Events

    /// Performs the cluster event of a phase (nothing for warm-up, steady and parallel).
    public func inject(_ phase: LabPhase) async throws {
        switch phase.kind {
        case .warmUp, .steady, .parallel: return
        case .restart: try await restartFirstNode(signal: SIGTERM)
        case .crash: try await restartFirstNode(signal: SIGKILL)
        case .scaleOut: try await scaleOut()
        case .scaleIn: try await scaleIn()
        case .proxyUpgrade: try await upgradeProxy()
        case .command: try await run(command: phase.command ?? "", phase: phase.name, bound: phase.commandTimeout)
        }
    }

    /// Runs a scenario's command with `/bin/sh -c` (output in the run's directory) and waits for it, at most `bound`.
    private func run(command: String, phase: String, bound: Duration) async throws {
        commandRuns += 1
        let logPath = "\(workDirectory)/command-\(commandRuns).log"
        logger.info("phase \(phase): running \(command)")
        let child = try LabChild.spawn(name: "command of phase \(phase)", executable: "/bin/sh", arguments: ["-c", command], logPath: logPath)
        guard await child.waitForExit(within: bound, stopGrace: .seconds(1)) != nil else {
            throw LabError.childFailed("the command of phase \(phase) did not end within \(bound); its output (\(logPath)) ends with:\n\(child.logTail())")
        }
        guard child.exitCode == 0 else {
            throw LabError.childFailed(
                "the command of phase \(phase) exited with status \(child.exitCode ?? -1); its output (\(logPath)) ends with:\n\(child.logTail())")
        }
    }

    /// How long a node may take to stop gracefully: 10 s after its shutdown delay.
    private var nodeStopGrace: Duration { .seconds(10 + configuration.shutdownDelaySeconds) }

    /// Stops the first node (gracefully or by SIGKILL) and starts it again with the same id and ports.
    private func restartFirstNode(signal: Int32) async throws {
        guard let node = nodes.first else { return }
        logger.info("\(signal == SIGKILL ? "crashing" : "restarting") \(node.id)")
        // Without the proxy the lab balances itself, and skips the node while it is down, as a health check would.
        if !proxyAvailable { entry.replaceNodePorts(nodes.dropFirst().map(\.port)) }
        if signal == SIGKILL {
            node.child.send(SIGKILL)
            _ = await node.child.waitForExit()
        } else {
            await node.child.stop(grace: nodeStopGrace)
        }
        nodes.removeFirst()
        let peers = nodes.map { "\($0.id)@127.0.0.1:\($0.replicationPort)" }
        try await launchNode(id: node.id, port: node.port, replicationPort: node.replicationPort, peers: peers, at: 0)
    }

    private func scaleOut() async throws {
        let number = nextNodeNumber
        nextNodeNumber += 1
        let port = try LoopbackPort.free()
        let replicationPort = try LoopbackPort.free()
        let id = nodeID(number: number, port: port)
        let peers = nodes.map { "\($0.id)@127.0.0.1:\($0.replicationPort)" }
        logger.info("scaling out: \(id)")
        try await launchNode(id: id, port: port, replicationPort: replicationPort, peers: peers)
        for node in nodes where strategy.replicates && node.id != id {
            try await changePeer(on: node, add: true, peer: "\(id)@127.0.0.1:\(replicationPort)")
        }
        if proxyAvailable {
            try await admin(.POST, "/backends", body: "127.0.0.1:\(port)")
        } else {
            entry.replaceNodePorts(nodes.map(\.port))
        }
    }

    /// Removes the newest node: out of the balancer first, then out of its peers' lists, then stopped gracefully.
    private func scaleIn() async throws {
        guard nodes.count > 1, let node = nodes.last else { return }
        logger.info("scaling in: \(node.id)")
        nodes.removeLast()
        if proxyAvailable {
            try await admin(.DELETE, "/backends/127.0.0.1:\(node.port)")
        } else {
            entry.replaceNodePorts(nodes.map(\.port))
        }
        for peer in nodes where strategy.replicates {
            try await changePeer(on: peer, add: false, peer: "\(node.id)@127.0.0.1:\(node.replicationPort)")
        }
        await node.child.stop(grace: nodeStopGrace)
    }

    /// One call to the proxy's admin API (docs/proxy.md).
    private func admin(_ method: HTTPMethod, _ path: String, body: String? = nil) async throws {
        let response = try await LabHTTPConnection.oneShot(method, port: adminPort, path: path, body: body, contentType: "text/plain")
        guard response.status < 300 else {
            throw LabError.childFailed("the proxy refused \(method) \(path): HTTP \(response.status) \(response.bodyText)")
        }
    }

    // MARK: Metrics

    /// Reads every node's intranet-bytes counter and peak RSS into the recorder's current phase.
    public func scrape(into recorder: LabRecorder) async {
        // By id: a restart or scale event may change `nodes` while this awaits.
        for id in nodes.map(\.id) {
            guard let node = nodes.first(where: { $0.id == id }) else { continue }
            recorder.recordNode(node.id, peakResidentBytes: node.child.peakResidentBytes())
            guard let response = try? await LabHTTPConnection.oneShot(port: node.port, path: "/metrics"), response.status == 200
            else { continue }
            let total = Self.intranetBytes(inMetrics: response.bodyText)
            guard let index = nodes.firstIndex(where: { $0.id == id && $0.child.pid == node.child.pid }) else { continue }
            // A node that restarted counts from zero again.
            let last = nodes[index].lastIntranetBytes
            recorder.recordIntranetBytes(total >= last ? total - last : total)
            nodes[index].lastIntranetBytes = total
        }
    }

    /// The sum of the `concord_app_intranet_bytes_total` samples in a Prometheus text page.
    static func intranetBytes(inMetrics text: String) -> Int {
        var total = 0.0
        for line in text.split(separator: "\n") where line.hasPrefix("concord_app_intranet_bytes_total") {
            if let value = line.split(separator: " ").last.flatMap({ Double($0) }) { total += value }
        }
        return Int(total)
    }

    // MARK: Children

    /// `node-N`, except under `ring`, where a node's id must be the name the proxy's ring gives its backend
    /// (`HOST:PORT`), so that both compute the same owner for a session id.
    private func nodeID(number: Int, port: Int) -> String {
        strategy == .ring ? "127.0.0.1:\(port)" : "node-\(number)"
    }

    /// The environment of every `concord app` node: its secrets and the store URL (which may hold a password),
    /// kept out of command lines that every user of the machine can read with `ps`.
    var nodeEnvironment: [String: String] {
        var environment = ["CONCORD_SESSION_KEY": sessionKey, "CONCORD_ADMIN_TOKEN": adminToken,
                           "CONCORD_REPLICATION_SECRET": replicationSecret, "CONCORD_PARENT_PID": "\(getpid())"]
        if let storeURL { environment["CONCORD_STORE"] = storeURL }
        return environment
    }

    /// The command line of one `concord app` node.
    func nodeArguments(id: String, port: Int, replicationPort: Int, peers: [String]) -> [String] {
        var arguments = ["app", "--strategy", strategy.appStrategy, "--node-id", id, "--port", "\(port)"]
        if configuration.shutdownDelaySeconds > 0 { arguments += ["--shutdown-delay", "\(configuration.shutdownDelaySeconds)"] }
        if let grace = configuration.quiesceGraceSeconds { arguments += ["--quiesce-grace", "\(grace)"] }
        if let wait = configuration.storeReadWaitSeconds { arguments += ["--store-read-wait", "\(wait)"] }
        if strategy.replicates {
            arguments += ["--replication-port", "\(replicationPort)"]
            if !peers.isEmpty { arguments += ["--peers", peers.joined(separator: ",")] }
        }
        return arguments
    }

    private func launchNode(id: String, port: Int, replicationPort: Int, peers: [String], at position: Int? = nil) async throws {
        let arguments = nodeArguments(id: id, port: port, replicationPort: replicationPort, peers: peers)
        let child = try LabChild.spawn(
            name: id, executable: executable, arguments: arguments,
            environment: nodeEnvironment, logPath: "\(workDirectory)/\(id).log")
        let node = Node(id: id, port: port, replicationPort: replicationPort, child: child)
        if let position { nodes.insert(node, at: position) } else { nodes.append(node) }
        try await waitUntilReady(child: child) {
            (try? await LabHTTPConnection.oneShot(port: port, path: "/ready", timeout: .seconds(1)))?.status == 200
        }
        if !proxyAvailable { entry.replaceNodePorts(nodes.map(\.port)) }
    }

    func proxyArguments() -> [String] {
        var arguments = ["proxy", "--listen", "127.0.0.1:\(proxyPort)", "--admin", "127.0.0.1:\(adminPort)"]
        for node in nodes { arguments += ["--backend", "127.0.0.1:\(node.port)"] }
        switch strategy.balancing {
        case .roundRobin: arguments += ["--mode", "http", "--balance", "round-robin"]
        case .sourceAddressHash: arguments += ["--mode", "tcp", "--balance", "hash", "--key", "ip", "--algorithm", "ring"]
        case .userHash:
            arguments += ["--mode", "http", "--balance", "hash", "--key", "cookie:concord_user,query:user,ip", "--algorithm", "ring"]
        case .userHashModulo:
            arguments += ["--mode", "http", "--balance", "hash", "--key", "cookie:concord_user,query:user,ip", "--algorithm", "modulo"]
        case .stickyCookie: arguments += ["--mode", "http", "--balance", "sticky-cookie"]
        case .sessionHash:
            arguments += ["--mode", "http", "--balance", "hash", "--key", "cookie:concord_session,ip", "--algorithm", "ring"]
        }
        arguments += ["--health-path", "/ready"]
        // Not for the L4 proxy: there it limits connections, and each virtual user holds one open for the whole run,
        // so all but `limit × nodes` users waited out the queue timeout (12 of 100 users were ever served).
        if let limit = configuration.proxyMaxRequestsPerBackend, strategy.balancing != .sourceAddressHash {
            arguments += ["--max-requests-per-backend", String(limit)]
        }
        return configuration.proxyAccessLog ? arguments + ["--access-log"] : arguments
    }

    /// Starts a second proxy on the same address (its sockets join the old one's with SO_REUSEPORT; its admin API
    /// gets a port of its own), waits for its ready line, then stops the old one gracefully.
    private func upgradeProxy() async throws {
        guard proxyAvailable, let old = proxy else { return }
        proxyGenerations += 1
        logger.info("starting proxy generation \(proxyGenerations) on port \(proxyPort), then stopping the old one")
        adminPort = try LoopbackPort.free()
        try await launchProxy(logPath: "\(workDirectory)/proxy-\(proxyGenerations).log")
        await old.stop()
    }

    private func launchProxy(logPath: String? = nil) async throws {
        if proxyPort == 0 {
            proxyPort = try LoopbackPort.free()
            adminPort = try LoopbackPort.free()
        }
        let child = try LabChild.spawn(
            name: "proxy", executable: executable, arguments: proxyArguments(),
            environment: ["CONCORD_PARENT_PID": "\(getpid())"], logPath: logPath ?? "\(workDirectory)/proxy.log")
        proxy = child
        try await waitUntilReady(child: child) {
            // The proxy logs one line containing "listening" when it is ready.
            ((try? String(contentsOfFile: child.logPath, encoding: .utf8)) ?? "").contains("listening")
        }
    }

    private func changePeer(on node: Node, add: Bool, peer: String) async throws {
        let response = try await LabHTTPConnection.oneShot(
            .POST, port: node.port, path: add ? "/admin/peers/add" : "/admin/peers/remove", body: "peer=\(peer)",
            contentType: "application/x-www-form-urlencoded", headers: [(name: "authorization", value: "Bearer \(adminToken)")])
        guard response.status < 300 else {
            throw LabError.childFailed("\(node.id) refused the peer change \(peer): HTTP \(response.status)")
        }
    }

    private func waitUntilReady(child: LabChild, _ isReady: () async -> Bool) async throws {
        let deadline = ContinuousClock.now.advanced(by: .seconds(configuration.readinessTimeoutSeconds))
        while ContinuousClock.now < deadline {
            guard child.isRunning else {
                throw LabError.childFailed("\(child.name) exited during start-up; its log ends with:\n\(child.logTail())")
            }
            if await isReady() { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw LabError.notReady(
            "\(child.name) not ready after \(configuration.readinessTimeoutSeconds) s; its log ends with:\n\(child.logTail())")
    }
}
