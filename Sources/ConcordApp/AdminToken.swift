import HTTPTypes
import Hummingbird

/// The check in front of the app's admin requests (`/admin/peers/…`): `Authorization: Bearer TOKEN` with the
/// node's ``ConcordAppConfiguration/adminToken``, compared in constant time; no token configured: refused.
/// (`concord app` refuses tokens under 16 characters at start: one an attacker could guess is as good as none.)
enum AdminToken {
    static func check(_ authorization: String?, against token: String?) throws {
        guard let token else {
            throw HTTPError(.forbidden, message: "runtime peer changes are off: start the node with --admin-token (or CONCORD_ADMIN_TOKEN)")
        }
        let prefix = "Bearer "
        guard let authorization, authorization.hasPrefix(prefix),
              equalInConstantTime(Array(authorization.utf8.dropFirst(prefix.utf8.count)), Array(token.utf8)) else {
            throw HTTPError(.unauthorized, headers: [.wwwAuthenticate: "Bearer"], message: "admin requests need Authorization: Bearer <the node's admin token>")
        }
    }

    /// Whether `a` and `b` are equal, in a time that depends on their lengths only.
    static func equalInConstantTime(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(truncatingIfNeeded: a.count ^ b.count)
        for index in 0..<max(a.count, b.count) {
            difference |= (index < a.count ? a[index] : 0) ^ (index < b.count ? b[index] : 0)
        }
        return difference == 0 && a.count == b.count
    }
}
