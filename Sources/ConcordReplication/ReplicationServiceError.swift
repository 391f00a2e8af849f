/// Why a replicated store's service is not serving.
public struct ReplicationServiceError: Error, Sendable, Hashable, CustomStringConvertible {
    private enum Base: Sendable, Hashable {
        case stoppedBeforeReady(node: String)
    }

    private let base: Base
    private init(_ base: Base) { self.base = base }

    /// The store's `run()` ended (cancelled or shut down) before its state transfer finished.
    static func stoppedBeforeReady(node: String) -> Self { Self(.stoppedBeforeReady(node: node)) }

    public var description: String {
        switch base {
        case .stoppedBeforeReady(let node): "replication node \(node) stopped before it became ready"
        }
    }
}
