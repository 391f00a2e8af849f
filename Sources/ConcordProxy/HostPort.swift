import NIOCore

/// A `HOST:PORT` as written on the command line or in YAML: `127.0.0.1:8080`, `[::1]:8080`, `localhost:8080`.
public struct HostPort: Sendable, Hashable, Codable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `HOST:PORT`; IPv6 literals go in brackets.
    public init(parsing text: String) throws(ProxyError) {
        let trimmed = text.trimmingWhitespace()
        if let scheme = trimmed.range(of: "://") {
            throw .invalidAddress(text, reason: "give HOST:PORT without the \(trimmed[..<scheme.lowerBound]):// scheme")
        }
        let hostPart: Substring
        let portPart: Substring
        if trimmed.hasPrefix("[") {
            guard let close = trimmed.firstIndex(of: "]"), trimmed[trimmed.index(after: close)...].hasPrefix(":") else {
                throw .invalidAddress(text, reason: "an IPv6 address needs the form [ADDRESS]:PORT")
            }
            hostPart = trimmed[trimmed.index(after: trimmed.startIndex)..<close]
            portPart = trimmed[trimmed.index(close, offsetBy: 2)...]
        } else {
            guard let colon = trimmed.lastIndex(of: ":") else { throw .invalidAddress(text, reason: "missing :PORT") }
            hostPart = trimmed[..<colon]
            portPart = trimmed[trimmed.index(after: colon)...]
            guard !hostPart.contains(":") else { throw .invalidAddress(text, reason: "put IPv6 addresses in brackets") }
        }
        guard !hostPart.isEmpty else { throw .invalidAddress(text, reason: "missing host") }
        guard let port = Int(portPart), (0...65_535).contains(port) else {
            throw .invalidAddress(text, reason: "port must be 0...65535")
        }
        self.init(host: String(hostPart), port: port)
    }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        do { try self.init(parsing: text) } catch { throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.description)) }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// Resolves the host (a literal, or a name through the system resolver) to a socket address.
    public func socketAddress() throws(ProxyError) -> SocketAddress {
        do {
            return try SocketAddress.makeAddressResolvingHost(host, port: port)
        } catch {
            throw .invalidAddress(description, reason: "cannot resolve host: \(error)")
        }
    }

    /// True for 127.0.0.0/8, ::1 and `localhost`: the admin API listens only there unless told otherwise.
    public var isLoopback: Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }
}

extension StringProtocol {
    func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let first = s.first, first.isWhitespace { s = s.dropFirst() }
        while let last = s.last, last.isWhitespace { s = s.dropLast() }
        return String(s)
    }
}
