import ConcordReplication
import ConcordSessionsTesting
import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import Testing

/// Settings that make a loopback cluster converge quickly in tests (short reconnect delays), with timeouts generous
/// enough that a loaded CI machine does not turn a slow answer into a failure.
func testConfiguration(nodeID: String, port: Int = 0, peers: [ReplicationPeer] = []) -> ReplicationConfiguration {
    ReplicationConfiguration(
        nodeID: nodeID, port: port, peers: peers, maximumFrameBytes: 1 << 20,
        initialReconnectDelay: .milliseconds(20), maximumReconnectDelay: .milliseconds(200),
        connectTimeout: .seconds(5), requestTimeout: .seconds(15), stateTransferTimeout: .seconds(15),
        sweepInterval: .milliseconds(200))
}

/// Log lines from cluster tests: quiet unless CONCORD_TEST_LOG is set.
let testLogger: Logger = {
    var logger = Logger(label: "concord.replication.test")
    logger.logLevel = ProcessInfo.processInfo.environment["CONCORD_TEST_LOG"] == nil ? .critical : .debug
    return logger
}()

/// ``ConcordSessionsTesting/eventually(timeout:_:)`` where a throw counts as "not yet" (a peer still connecting),
/// with a longer default: replication crosses several tasks and connections.
func eventually(timeout: Duration = .seconds(20), _ condition: () async throws -> Bool) async -> Bool {
    await ConcordSessionsTesting.eventually(timeout: timeout) { (try? await condition()) == true }
}

/// In-process nodes on loopback, each a store running as a task; the test stops them all, also on failure.
final class TestCluster<Store: ReplicatedSessionStore>: Sendable {
    private struct Node {
        var store: Store
        var task: Task<Void, any Error>?
    }

    let make: @Sendable (ReplicationConfiguration) -> Store
    let port: @Sendable (Store) async throws -> Int
    private let nodes = Mutex<[Node]>([])
    private let peerList = Mutex<[ReplicationPeer]>([])

    init(
        make: @escaping @Sendable (ReplicationConfiguration) -> Store,
        port: @escaping @Sendable (Store) async throws -> Int
    ) {
        self.make = make
        self.port = port
    }

    var peers: [ReplicationPeer] { peerList.withLock { $0 } }
    var count: Int { nodes.withLock { $0.count } }

    subscript(index: Int) -> Store { nodes.withLock { $0[index].store } }

    var stores: [Store] { nodes.withLock { $0.map(\.store) } }

    /// Starts a node with a free port and the current peers in its configuration; returns its index.
    @discardableResult
    func start(peered: Bool) async throws -> Int {
        let index = count
        let configuration = testConfiguration(nodeID: "node-\(index)", peers: peered ? peers : [])
        let store = make(configuration)
        nodes.withLock { $0.append(Node(store: store, task: Task { try await store.run() })) }
        let peer = ReplicationPeer(id: "node-\(index)", host: "127.0.0.1", port: try await port(store))
        peerList.withLock { $0.append(peer) }
        return index
    }

    /// Stops node `index`.
    func stop(_ index: Int) async {
        let task = nodes.withLock { nodes in
            defer { nodes[index].task = nil }
            return nodes[index].task
        }
        task?.cancel()
        _ = await task?.result
    }

    /// Starts node `index` again, configured with every other node as a peer, and tells the others its address.
    /// It binds a new free port: its old one may have been taken by another test meanwhile, and a node that
    /// comes back at a new address (a rescheduled container) is the harder case anyway.
    func restart(_ index: Int) async throws -> Store {
        await stop(index)
        let all = peers
        let configuration = testConfiguration(
            nodeID: all[index].id, peers: all.filter { $0.id != all[index].id })
        let store = make(configuration)
        nodes.withLock { $0[index] = Node(store: store, task: Task { try await store.run() }) }
        let peer = ReplicationPeer(id: all[index].id, host: "127.0.0.1", port: try await port(store))
        peerList.withLock { $0[index] = peer }
        for (other, node) in stores.enumerated() where other != index { node.addPeer(peer) }
        return store
    }

    func stopAll() async {
        for index in 0..<count { await stop(index) }
    }

    /// Runs `body` on a cluster and stops every node afterwards, whether `body` succeeds or throws.
    static func with(
        make: @escaping @Sendable (ReplicationConfiguration) -> Store,
        port: @escaping @Sendable (Store) async throws -> Int,
        _ body: (TestCluster<Store>) async throws -> Void
    ) async throws {
        let cluster = TestCluster(make: make, port: port)
        do {
            try await body(cluster)
        } catch {
            await cluster.stopAll()
            throw error
        }
        await cluster.stopAll()
    }
}
