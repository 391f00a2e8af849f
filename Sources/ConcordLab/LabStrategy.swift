import Foundation

/// A session strategy as the lab runs it: which `--strategy` the app nodes get and how the proxy balances.
///
/// The proxy-side strategies (`l4-hash`, `l7-hash`, `sticky-cookie`) run app nodes that keep sessions in local
/// memory: the proxy alone keeps each user on the node that holds the session.
public enum LabStrategy: String, CaseIterable, Codable, Sendable {
    case local
    case sync
    case client
    case l4Hash = "l4-hash"
    case l7Hash = "l7-hash"
    /// `l7-hash` with `hash mod n` instead of the consistent ring: the folklore setup, for comparison on scaling.
    case l7HashModulo = "l7-hash-modulo"
    case store
    case stickyCookie = "sticky-cookie"
    case ring
    case storeNearCache = "store+near-cache"

    /// How the proxy in front of the app nodes picks a node for a request.
    public enum Balancing: String, Sendable {
        /// Every request to the next node in turn (the session must be readable on every node).
        case roundRobin = "round-robin"
        /// TCP mode, consistent hash of the client's source address.
        case sourceAddressHash = "source-address hash"
        /// HTTP mode, consistent hash of the user (cookie `concord_user`, on login the `user` query parameter).
        case userHash = "user hash"
        /// As ``userHash`` but `hash mod n`: a change in the node count remaps most users.
        case userHashModulo = "user hash mod n"
        /// HTTP mode, the proxy inserts a cookie naming the node.
        case stickyCookie = "sticky cookie"
        /// HTTP mode, consistent hash of the session id cookie, on the same ring the app nodes replicate on.
        case sessionHash = "session-id hash"
    }

    /// The `concord app --strategy` value the nodes run.
    public var appStrategy: String {
        switch self {
        case .local, .l4Hash, .l7Hash, .l7HashModulo, .stickyCookie: "local"
        case .sync: "sync"
        case .client: "client"
        case .store: "store"
        case .ring: "ring"
        case .storeNearCache: "store+near-cache"
        }
    }

    public var balancing: Balancing {
        switch self {
        case .local, .sync, .client, .store, .storeNearCache: .roundRobin
        case .l4Hash: .sourceAddressHash
        case .l7Hash: .userHash
        case .l7HashModulo: .userHashModulo
        case .stickyCookie: .stickyCookie
        case .ring: .sessionHash
        }
    }

    /// Whether the nodes replicate to each other (and so need `--peers`).
    public var replicates: Bool { self == .sync || self == .ring }

    /// Whether the nodes share a backend store (and so need `--store`).
    public var usesStore: Bool { self == .store || self == .storeNearCache }

    /// One line on why the strategy behaves as it does, for the report.
    public var mechanism: String {
        switch self {
        case .local: "sessions live in one node's memory, and round-robin sends the next request elsewhere"
        case .sync: "every node holds every session, so any node answers, at the price of replicating each write to all peers"
        case .client: "the session travels in a sealed cookie, so no node holds state, at the price of a large cookie on every request"
        case .l4Hash: "the proxy pins each source address to a node; the pinned node's memory is the only copy"
        case .l7Hash: "the proxy pins each user to a node; the pinned node's memory is the only copy"
        case .l7HashModulo: "the proxy pins each user to node hash mod n, so a change in n sends most users to a node without their session"
        case .store: "every node reads and writes the shared store, one round trip per request"
        case .stickyCookie: "the proxy's cookie pins the browser to a node; that node's memory is the only copy"
        case .ring: "the proxy hashes the session id on the ring the nodes replicate on, so the next node on the ring holds a copy"
        case .storeNearCache: "the shared store stays the truth, and a version check lets a node reuse its cached copy"
        }
    }

    /// Whether sessions outlive the node that served them by design (a copy elsewhere: peers, the cookie, the store),
    /// so a loss is not explained by the strategy but points at something else (the logs, a too-short phase).
    public var keepsSessionsAcrossNodes: Bool {
        switch self {
        case .sync, .client, .store, .ring, .storeNearCache: true
        case .local, .l4Hash, .l7Hash, .l7HashModulo, .stickyCookie: false
        }
    }

    /// Parses a comma-separated list such as `store,ring,l4-hash`.
    public static func parseList(_ text: String) throws -> [LabStrategy] {
        try text.split(separator: ",").map { raw in
            let name = raw.trimmingCharacters(in: .whitespaces).lowercased()
            guard let strategy = LabStrategy(rawValue: name) else {
                throw LabError.invalidArgument(
                    "unknown strategy '\(name)'; expected one of \(allCases.map(\.rawValue).joined(separator: ", "))")
            }
            return strategy
        }
    }
}
