/// One place an L7 request's affinity key can come from. Spelled `cookie:NAME`, `header:NAME`, `query:NAME`,
/// `path` or `ip` on the command line and in YAML.
public enum KeySource: Sendable, Hashable, CustomStringConvertible {
    case cookie(String)
    case header(String)
    case query(String)
    case path
    /// The client IP (after trusted-proxy X-Forwarded-For resolution, and the configured prefix grouping).
    case ip

    public init(parsing text: String) throws(ProxyError) {
        let trimmed = text.trimmingWhitespace()
        if trimmed == "path" { self = .path; return }
        if trimmed == "ip" { self = .ip; return }
        guard let colon = trimmed.firstIndex(of: ":") else {
            throw .invalidSetting("--key: unknown key source '\(text)'; expected cookie:NAME, header:NAME, query:NAME, path or ip")
        }
        let kind = trimmed[..<colon]
        let name = String(trimmed[trimmed.index(after: colon)...])
        guard !name.isEmpty else { throw .invalidSetting("--key: '\(text)' needs a name after the colon") }
        switch kind {
        case "cookie": self = .cookie(name)
        case "header": self = .header(name.lowercased())
        case "query": self = .query(name)
        default:
            throw .invalidSetting("--key: unknown key source '\(kind)'; expected cookie, header, query, path or ip")
        }
    }

    public var description: String {
        switch self {
        case .cookie(let name): "cookie:\(name)"
        case .header(let name): "header:\(name)"
        case .query(let name): "query:\(name)"
        case .path: "path"
        case .ip: "ip"
        }
    }
}

/// The ordered fallback chain of key sources: the first one present in a request gives the key
/// (e.g. `cookie:sid,ip` — the session cookie, or the client IP before the user has one).
public struct KeyChain: Sendable, Hashable, Codable, CustomStringConvertible {
    public var sources: [KeySource]

    public init(_ sources: [KeySource]) { self.sources = sources }

    /// Parses `cookie:sid,ip`.
    public init(parsing text: String) throws(ProxyError) {
        var sources: [KeySource] = []
        for part in text.split(separator: ",") { sources.append(try KeySource(parsing: String(part))) }
        guard !sources.isEmpty else { throw .invalidSetting("--key: empty key chain") }
        self.sources = sources
    }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        do { try self.init(parsing: text) } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.description))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(sources.map(\.description).joined(separator: ","))
    }

    /// `cookie:sid → ip`, as the ready line shows it.
    public var description: String { sources.map(\.description).joined(separator: " → ") }
}
