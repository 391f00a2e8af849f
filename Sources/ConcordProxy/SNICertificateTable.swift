/// Which certificate a TLS client gets for the server name it sends (SNI): exact names first, then a wildcard
/// for the name's first label (`*.shop.example` for `api.shop.example`, as RFC 6125 matches certificates); no
/// match means the default certificate. Names compare without case.
struct SNICertificateTable: Sendable {
    private var exact: [String: ProxyTLSConfiguration.Identity] = [:]
    /// Keyed by the domain after `*.`.
    private var wildcard: [String: ProxyTLSConfiguration.Identity] = [:]

    var isEmpty: Bool { exact.isEmpty && wildcard.isEmpty }

    mutating func add(_ name: String, _ identity: ProxyTLSConfiguration.Identity) {
        if name.hasPrefix("*.") { wildcard[String(name.dropFirst(2))] = identity } else { exact[name] = identity }
    }

    func identity(for serverName: String) -> ProxyTLSConfiguration.Identity? {
        let name = serverName.lowercased()
        if let match = exact[name] { return match }
        guard let dot = name.firstIndex(of: "."), dot != name.startIndex else { return nil }
        return wildcard[String(name[name.index(after: dot)...])]
    }

    /// Each entry's names, lowercased; throws for a name that is neither a host name nor `*.` + a host name, for
    /// an entry without names, and for a name listed twice.
    static func names(of entries: [ProxyTLSConfiguration.SNICertificate]) throws(ProxyError) -> [[String]] {
        var seen = Set<String>()
        var all: [[String]] = []
        for (index, entry) in entries.enumerated() {
            guard !entry.serverNames.isEmpty else { throw .invalidSetting("tls sni[\(index)]: serverNames is empty") }
            var names: [String] = []
            for raw in entry.serverNames {
                let name = raw.lowercased()
                let host = name.hasPrefix("*.") ? String(name.dropFirst(2)) : name
                guard isHostName(host), name.hasPrefix("*.") ? host.contains(".") : true else {
                    throw .invalidSetting("tls sni[\(index)] serverNames: '\(raw)' is not a host name (or *. and a domain)")
                }
                guard seen.insert(name).inserted else { throw .invalidSetting("tls sni: \(raw) is listed twice") }
                names.append(name)
            }
            all.append(names)
        }
        return all
    }

    /// Letters, digits and hyphens in dot-separated labels of 1...63, 253 at most in all.
    private static func isHostName(_ text: String) -> Bool {
        guard !text.isEmpty, text.utf8.count <= 253 else { return false }
        return text.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { label in
            (1...63).contains(label.utf8.count) && label.first != "-" && label.last != "-"
                && label.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D }
        }
    }
}
