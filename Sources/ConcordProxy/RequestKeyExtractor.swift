import ConcordHashing

/// Finds an L7 request's affinity key (the first source of the ``KeyChain`` present in it) and its client IP
/// (the peer, or — when the peer is a trusted proxy — the nearest untrusted address in X-Forwarded-For).
/// Keys are hashed with ``KeyHash`` only, so every process maps a key to the same backend; `ring` replication
/// in the app nodes computes the same owner from the same sid and the same backend ids (`HOST:PORT`).
public struct RequestKeyExtractor: Sendable {
    public let chain: KeyChain
    public let trustedProxies: [AddressPrefix]
    public let ipv4PrefixLength: Int
    public let ipv6PrefixLength: Int

    public init(chain: KeyChain, trustedProxies: [AddressPrefix] = [], ipv4PrefixLength: Int = 32, ipv6PrefixLength: Int = 128) {
        self.chain = chain
        self.trustedProxies = trustedProxies
        self.ipv4PrefixLength = ipv4PrefixLength
        self.ipv6PrefixLength = ipv6PrefixLength
    }

    /// The key's hash, or `nil` when no source of the chain is present. Reads the head's bytes in place: it runs
    /// on every proxied request.
    func keyHash(for head: ClientRequestHead, peer: ClientAddress?) -> UInt64? {
        for source in chain.sources {
            switch source {
            case .cookie(let name):
                if let value = head.cookie(named: name) { return head.hash(value) }
            case .header(let name):
                if let value = head.firstValue(named: name), !value.isEmpty { return head.hash(value) }
            case .query(let name):
                if let value = head.queryValue(named: name) { return head.hash(value) }
            case .path:
                return head.hash(head.path)
            case .ip:
                if let client = clientAddress(for: head, peer: peer) { return ipHash(client) }
            }
        }
        return nil
    }

    /// Hash of a client address after prefix grouping (L4 uses this too).
    public func ipHash(_ address: ClientAddress) -> UInt64 {
        KeyHash.hash(bytes: address.masked(prefixLength: address.isIPv4 ? ipv4PrefixLength : ipv6PrefixLength))
    }

    /// The client's address: the peer, unless the peer is trusted and sent X-Forwarded-For.
    func clientAddress(for head: ClientRequestHead, peer: ClientAddress?) -> ClientAddress? {
        guard let peer, isTrusted(peer) else { return peer }
        let forwarded = head.listElements(named: "x-forwarded-for")
        guard !forwarded.isEmpty else { return peer }
        var leftmost: ClientAddress?
        for entry in forwarded.reversed() {
            guard let address = ClientAddress(parsing: entry) else { return leftmost ?? peer }
            if !isTrusted(address) { return address }
            leftmost = address
        }
        return leftmost ?? peer
    }

    public func isTrusted(_ address: ClientAddress) -> Bool {
        trustedProxies.contains { $0.contains(address) }
    }

    /// The value of query parameter `name` in `uri` (the admin API's requests; proxied ones are read as bytes,
    /// ``ClientRequestHead/queryValue(named:)``).
    static func queryValue(named name: String, in uri: String) -> Substring? {
        guard let question = uri.firstIndex(of: "?") else { return nil }
        var query = uri[uri.index(after: question)...]
        if let hash = query.firstIndex(of: "#") { query = query[..<hash] }
        for pair in query.split(separator: "&") {
            guard let equals = pair.firstIndex(of: "="), pair[..<equals] == name else { continue }
            let value = pair[pair.index(after: equals)...]
            if !value.isEmpty { return value }
        }
        return nil
    }

    /// `uri` without its query and fragment.
    static func path(of uri: String) -> Substring {
        let end = uri.firstIndex(where: { $0 == "?" || $0 == "#" }) ?? uri.endIndex
        return uri[..<end]
    }
}
