/// What the proxy speaks to clients: HTTP/1.1 (layer 7) or raw TCP (layer 4).
public enum ProxyMode: String, Sendable, Codable, SettingChoice, CustomStringConvertible {
    case http
    case tcp

    public var description: String { rawValue }
}

/// How a request or connection picks its backend.
public enum BalanceStrategy: String, Sendable, Codable, SettingChoice, CustomStringConvertible {
    /// Hash the key (``KeyChain``) onto the node selection; affinity per key.
    case hash
    /// Each new request (L7) or connection (L4) goes to the next ready backend.
    case roundRobin = "round-robin"
    /// The ready backend with the fewest requests (L7) or connections (L4) in flight.
    case leastConn = "least-conn"
    /// L7 only: the proxy inserts a cookie naming the backend; later requests follow it.
    case stickyCookie = "sticky-cookie"

    public var description: String { rawValue }
}

/// PROXY protocol header written to backends in L4 mode, so they see the real client address.
public enum ProxyProtocolVersion: String, Sendable, Codable, SettingChoice {
    case v1
    case v2
}
