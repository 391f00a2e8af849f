/// The session cookie's name and attributes, and the `Set-Cookie` header values they give.
///
/// Defaults follow OWASP's session-management advice: `HttpOnly`, `SameSite=Lax`, `Path=/`, no `Domain`
/// (host-only). `Secure` is off by default only so that plain-HTTP development works; turn it on (or use
/// ``hostPrefix``) behind HTTPS.
public struct SessionCookieConfiguration: Sendable, Hashable {
    public enum SameSite: String, Sendable, Hashable, Codable {
        case strict = "Strict"
        case lax = "Lax"
        case none = "None"
    }

    /// The cookie name (without the `__Host-` prefix). Default `concord_session`.
    public var name: String
    /// Prefix the name with `__Host-`, which browsers accept only with `Secure`, `Path=/` and no `Domain`
    /// (so a sibling subdomain cannot plant the cookie). Default `false`.
    public var hostPrefix: Bool
    /// Default `true`: scripts cannot read the cookie.
    public var httpOnly: Bool
    /// Default `.lax`; `nil` omits the attribute.
    public var sameSite: SameSite?
    /// Send only over HTTPS. Default `false` (see above).
    public var secure: Bool
    /// Default `/`.
    public var path: String
    /// Default `nil` (host-only).
    public var domain: String?
    /// Give the cookie a `Max-Age` (the remaining absolute lifetime of the session) so it survives a browser
    /// restart; `false` makes it a browser-session cookie. Default `true`.
    public var persistent: Bool

    public init(
        name: String = "concord_session",
        hostPrefix: Bool = false,
        httpOnly: Bool = true,
        sameSite: SameSite? = .lax,
        secure: Bool = false,
        path: String = "/",
        domain: String? = nil,
        persistent: Bool = true
    ) {
        self.name = name
        self.hostPrefix = hostPrefix
        self.httpOnly = httpOnly
        self.sameSite = sameSite
        self.secure = secure
        self.path = path
        self.domain = domain
        self.persistent = persistent
    }

    /// The name as sent: with the `__Host-` prefix when ``hostPrefix`` is on.
    public var fullName: String { hostPrefix ? "__Host-" + name : name }

    /// Throws ``SessionError`` `.invalidConfiguration` for settings browsers would reject or ignore.
    public func validate() throws {
        let separators = Set("()<>@,;:\\\"/[]?={} \t".utf8)
        guard !name.isEmpty, name.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && !separators.contains($0) }) else {
            throw SessionError.invalidConfiguration("cookie name \"\(name)\" is not an RFC 6265 token")
        }
        if hostPrefix {
            guard secure, path == "/", domain == nil else {
                throw SessionError.invalidConfiguration("a __Host- cookie needs secure: true, path \"/\" and no domain")
            }
        }
        if sameSite == SameSite.none, !secure {
            throw SessionError.invalidConfiguration("SameSite=None requires secure: true")
        }
        for (label, value) in [("path", path), ("domain", domain ?? "")] where value.contains(";") || value.contains(where: \.isNewline) {
            throw SessionError.invalidConfiguration("cookie \(label) \"\(value)\" contains ';' or a line break")
        }
    }

    /// The `Set-Cookie` value for `update`, or `nil` when nothing must be sent.
    public func setCookieHeader(for update: SessionCookieUpdate) -> String? {
        switch update {
        case .unchanged: nil
        case .set(let value, let maxAge): header(value: value, maxAge: persistent ? maxAge : nil, expired: false)
        case .expire: header(value: "", maxAge: 0, expired: true)
        }
    }

    private func header(value: String, maxAge: Int?, expired: Bool) -> String {
        var header = "\(fullName)=\(value)"
        if let maxAge { header += "; Max-Age=\(max(0, maxAge))" }
        if expired { header += "; Expires=Thu, 01 Jan 1970 00:00:00 GMT" }
        header += "; Path=\(path)"
        if let domain { header += "; Domain=\(domain)" }
        if secure { header += "; Secure" }
        if httpOnly { header += "; HttpOnly" }
        if let sameSite { header += "; SameSite=\(sameSite.rawValue)" }
        return header
    }

    /// The value of this cookie among the `Cookie` request header values, if present. Concrete for the usual
    /// `[String]` (what Hummingbird's `headers[values: .cookie]` gives): a generic call from another module is
    /// not specialised and pays a metadata lookup per header on every request.
    public func value(inCookieHeaders headers: [String]) -> Substring? {
        let name = fullName
        for header in headers {
            if let value = Self.value(named: name, in: header) { return value }
        }
        return nil
    }

    /// The value of this cookie in one `Cookie` request header value (`a=1; b=2`), if present.
    public func value(inCookieHeader header: String) -> Substring? {
        Self.value(named: fullName, in: header)
    }

    /// The value of this cookie among the `Cookie` request header values, if present.
    public func value(inCookieHeaders headers: some Sequence<some StringProtocol>) -> Substring? {
        value(inCookieHeaders: headers.map { String($0) })
    }

    /// Scans one `Cookie` header (`a=1; b=2`) byte by byte: it runs on every request, and splitting into
    /// substrings costs several times more. Native strings are scanned as a raw UTF-8 buffer (no index checks).
    static func value(named name: String, in header: String) -> Substring? {
        var header = header
        header.makeContiguousUTF8()
        let range: Range<Int>? = header.utf8.withContiguousStorageIfAvailable { bytes in
            var name = name
            return name.withUTF8 { valueRange(named: $0, in: bytes) }
        } ?? nil
        guard let range else { return nil }
        let utf8 = header.utf8
        return header[utf8.index(utf8.startIndex, offsetBy: range.lowerBound)..<utf8.index(utf8.startIndex, offsetBy: range.upperBound)]
    }

    /// Every value of this cookie in one `Cookie` header, in order, at most `limit`. A browser sends two when it
    /// still holds a stale one of another Path or Domain — and may send that one first (the session middleware then
    /// tries the others: a user stayed logged out however often they logged in).
    public func values(inCookieHeader header: String, limit: Int = 8) -> [Substring] {
        var header = header
        header.makeContiguousUTF8()
        var name = fullName
        let ranges: [Range<Int>] = header.utf8.withContiguousStorageIfAvailable { bytes in
            name.withUTF8 { name in
                var found: [Range<Int>] = []
                var start = 0
                while found.count < limit, let range = Self.valueRange(named: name, in: bytes, from: start) {
                    found.append(range)
                    start = range.upperBound + 1
                }
                return found
            }
        } ?? []
        let utf8 = header.utf8
        return ranges.map { header[utf8.index(utf8.startIndex, offsetBy: $0.lowerBound)..<utf8.index(utf8.startIndex, offsetBy: $0.upperBound)] }
    }

    /// Offsets of the value of cookie `name` in the header bytes, the first from `start` (a pair's beginning).
    private static func valueRange(named name: UnsafeBufferPointer<UInt8>, in bytes: UnsafeBufferPointer<UInt8>, from start: Int = 0) -> Range<Int>? {
        let end = bytes.count
        var index = start
        while index < end {
            while index < end, bytes[index] == UInt8(ascii: " ") || bytes[index] == UInt8(ascii: "\t") { index += 1 }
            let pairStart = index
            var equals = -1
            while index < end, bytes[index] != UInt8(ascii: ";") {
                if equals < 0, bytes[index] == UInt8(ascii: "=") { equals = index }
                index += 1
            }
            if equals - pairStart == name.count, UnsafeBufferPointer(rebasing: bytes[pairStart..<equals]).elementsEqual(name) {
                // RFC 6265 allows a value in double quotes; they are not part of it.
                let quote = UInt8(ascii: "\"")
                if index - equals >= 4, bytes[equals + 1] == quote, bytes[index - 1] == quote { return equals + 2..<index - 1 }
                return equals + 1..<index
            }
            index += 1
        }
        return nil
    }
}

/// What the session cookie must do on the response.
public enum SessionCookieUpdate: Sendable, Hashable {
    /// Send nothing.
    case unchanged
    /// Set the cookie to `value`, living `maxAge` seconds (the remaining absolute lifetime).
    case set(value: String, maxAge: Int)
    /// Tell the browser to drop the cookie (the session was destroyed).
    case expire
}
