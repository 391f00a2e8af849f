import NIOCore

/// A client IP as raw bytes (4 for IPv4, 16 for IPv6; IPv4-mapped IPv6 is folded to IPv4 so a dual-stack
/// listener hashes a client the same way on both families).
public struct ClientAddress: Sendable, Hashable, CustomStringConvertible {
    public let bytes: [UInt8]

    public init?(bytes: [UInt8]) {
        guard bytes.count == 4 || bytes.count == 16 else { return nil }
        if bytes.count == 16, bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xff, bytes[11] == 0xff {
            self.bytes = Array(bytes[12...])
        } else {
            self.bytes = bytes
        }
    }

    public init?(_ address: SocketAddress?) {
        guard let address else { return nil }
        switch address {
        case .v4(let v4):
            var addr = v4.address.sin_addr
            self.init(bytes: withUnsafeBytes(of: &addr) { Array($0) })
        case .v6(let v6):
            var addr = v6.address.sin6_addr
            self.init(bytes: withUnsafeBytes(of: &addr) { Array($0) })
        default:
            return nil
        }
    }

    /// Parses an IPv4 or IPv6 literal (brackets and a `:port` suffix on IPv4 are tolerated, as found in headers).
    public init?(parsing text: some StringProtocol) {
        var s = Substring(text).trimmingWhitespace()[...]
        if s.hasPrefix("\"") && s.hasSuffix("\"") && s.count >= 2 { s = s.dropFirst().dropLast() }
        if s.hasPrefix("[") {
            guard let close = s.firstIndex(of: "]") else { return nil }
            s = s[s.index(after: s.startIndex)..<close]
        } else if s.filter({ $0 == ":" }).count == 1, let colon = s.firstIndex(of: ":") {
            s = s[..<colon]
        }
        guard let address = try? SocketAddress(ipAddress: String(s), port: 0) else { return nil }
        self.init(address)
    }

    public var isIPv4: Bool { bytes.count == 4 }

    /// The address with all bits past `prefixLength` cleared (e.g. /24 groups a client's IPv4 subnet).
    public func masked(prefixLength: Int) -> [UInt8] {
        var out = bytes
        let keep = max(0, min(prefixLength, bytes.count * 8))
        for i in out.indices {
            let bitsBefore = i * 8
            if bitsBefore >= keep { out[i] = 0 } else if keep - bitsBefore < 8 {
                out[i] &= UInt8(truncatingIfNeeded: 0xff << (8 - (keep - bitsBefore)))
            }
        }
        return out
    }

    /// Dotted IPv4, or IPv6 in the canonical text form of RFC 5952 (`2001:db8::7`, `::1`): lower-case hex without
    /// leading zeros, the longest run of two or more zero groups (the first of equal runs) written `::` — what
    /// nginx and HAProxy write in X-Forwarded-For and logs.
    public var description: String {
        if isIPv4 { return bytes.map(String.init).joined(separator: ".") }
        let groups = stride(from: 0, to: 16, by: 2).map { UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]) }
        var best: Range<Int>?
        var start: Int?
        for index in 0...groups.count {
            if index < groups.count, groups[index] == 0 {
                if start == nil { start = index }
            } else if let runStart = start {
                if index - runStart >= 2, index - runStart > (best?.count ?? 0) { best = runStart..<index }
                start = nil
            }
        }
        func text(_ slice: ArraySlice<UInt16>) -> String { slice.map { String($0, radix: 16) }.joined(separator: ":") }
        guard let best else { return text(groups[...]) }
        return text(groups[..<best.lowerBound]) + "::" + text(groups[best.upperBound...])
    }
}

/// An address prefix such as `10.0.0.0/8` or `::1` (a single address is a full-length prefix).
public struct AddressPrefix: Sendable, Hashable, CustomStringConvertible {
    public let network: ClientAddress
    public let length: Int

    public init(parsing text: String) throws(ProxyError) {
        let parts = text.split(separator: "/", maxSplits: 1)
        guard let first = parts.first, let address = ClientAddress(parsing: first) else {
            throw .invalidSetting("trustedProxies: '\(text)' is not an address or CIDR prefix")
        }
        let maxLength = address.bytes.count * 8
        var length = maxLength
        if parts.count == 2 {
            guard let parsed = Int(parts[1]), (0...maxLength).contains(parsed) else {
                throw .invalidSetting("trustedProxies: '\(text)' has a prefix length outside 0...\(maxLength)")
            }
            length = parsed
        }
        self.length = length
        self.network = ClientAddress(bytes: address.masked(prefixLength: length))!
    }

    public func contains(_ address: ClientAddress) -> Bool {
        address.bytes.count == network.bytes.count && address.masked(prefixLength: length) == network.bytes
    }

    public var description: String { "\(network)/\(length)" }
}
