import Synchronization

/// Where virtual users send their requests: the proxy's port, or — when the lab runs without a proxy — every
/// node's port in turn (round-robin per user, which is what a round-robin proxy does per request).
public final class LabEntryPoint: Sendable {
    private let ports: Mutex<[Int]>

    /// All traffic to `port` (the proxy).
    public init(proxyPort: Int) { ports = Mutex([proxyPort]) }

    /// Traffic spread over `nodePorts`, updated by ``replaceNodePorts(_:)`` on scale-out and scale-in.
    public init(nodePorts: [Int]) { ports = Mutex(nodePorts) }

    public func replaceNodePorts(_ newPorts: [Int]) { ports.withLock { $0 = newPorts } }

    /// The port for a user's `turn`-th request.
    public func port(turn: Int) -> Int {
        ports.withLock { $0.isEmpty ? 0 : $0[turn % $0.count] }
    }
}
