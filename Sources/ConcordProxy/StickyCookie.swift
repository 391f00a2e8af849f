import ConcordHashing

/// The sticky-cookie value naming a backend: 16 hex digits of the backend id's ``KeyHash`` — stable across proxy
/// restarts and processes, and it does not reveal backend addresses to clients.
enum StickyCookie {
    static func token(for backend: Backend) -> String {
        let hash = KeyHash.hash(backend.id)
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    /// `Set-Cookie` for `backend`: session cookie (no Max-Age), whole site, not readable by scripts; `Secure` when
    /// the client came over TLS, so the browser never sends it over plain HTTP.
    static func setCookie(name: String, backend: Backend, secure: Bool = false) -> String {
        "\(name)=\(token(for: backend)); Path=/; HttpOnly; SameSite=Lax\(secure ? "; Secure" : "")"
    }
}
