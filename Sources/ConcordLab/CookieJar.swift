import Foundation

/// A virtual user's cookies: what `Set-Cookie` stored, sent back as one `Cookie` header. Paths and domains are
/// ignored (one site on loopback); `Max-Age=0` or an `Expires` in the past (the epoch, as servers write it) deletes.
public struct CookieJar: Sendable, Hashable {
    public private(set) var cookies: [String: String] = [:]
    /// Insertion order, so the header is stable.
    private var order: [String] = []

    public init() {}

    /// Applies every `Set-Cookie` header of a response, in order.
    public mutating func apply(setCookieHeaders: [String]) {
        for header in setCookieHeaders { apply(setCookie: header) }
    }

    public mutating func apply(setCookie header: String) {
        let parts = header.split(separator: ";", omittingEmptySubsequences: false)
        guard let pair = parts.first, let equals = pair.firstIndex(of: "=") else { return }
        let name = pair[..<equals].trimmingCharacters(in: .whitespaces)
        let value = pair[pair.index(after: equals)...].trimmingCharacters(in: .whitespaces)
        guard !name.isEmpty else { return }
        let expired = parts.dropFirst().contains { attribute in
            let text = attribute.trimmingCharacters(in: .whitespaces).lowercased()
            if text.hasPrefix("max-age=") { return (Int(text.dropFirst(8)) ?? 1) <= 0 }
            if text.hasPrefix("expires=") { return text.contains("1970") }
            return false
        }
        if expired {
            cookies[name] = nil
            order.removeAll { $0 == name }
        } else {
            if cookies[name] == nil { order.append(name) }
            cookies[name] = value
        }
    }

    /// The `Cookie` header value, or `nil` when the jar is empty.
    public var header: String? {
        order.isEmpty ? nil : order.map { "\($0)=\(cookies[$0] ?? "")" }.joined(separator: "; ")
    }

    public mutating func removeAll() {
        cookies = [:]
        order = []
    }
}

