import NIOCore

/// One upstream server. Its identity (`id`, the `HOST:PORT` as configured) keys health, load and the hash
/// selection, so a backend keeps its keys and its state across reloads as long as its address is the same.
public struct Backend: Sendable, Hashable, CustomStringConvertible {
    public let address: HostPort
    /// Resolved once when the backend joins, so connecting never blocks on a name lookup.
    public let socketAddress: SocketAddress

    /// `HOST:PORT`, formatted once: it keys per-request lookups (pool, load accounting).
    public let id: String

    public init(address: HostPort) throws(ProxyError) {
        self.address = address
        self.socketAddress = try address.socketAddress()
        self.id = address.description
    }

    public var description: String { id }

    public static func == (lhs: Backend, rhs: Backend) -> Bool { lhs.address == rhs.address }
    public func hash(into hasher: inout Hasher) { hasher.combine(address) }
}
