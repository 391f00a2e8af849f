/// What a ``SessionManager`` found when it read a request's session cookie.
public enum SessionLoadOutcome: Sendable, Hashable {
    /// The request carried no session cookie.
    case none
    /// A live session was found.
    case loaded
    /// The cookie was refused and the request starts without a session.
    case rejected(SessionRejection)
}

/// Why a presented session cookie was not adopted. Each is counted; none is an error for the client.
public enum SessionRejection: String, Error, Sendable, Hashable, CaseIterable {
    /// Not an id or sealed value this library could have issued (wrong characters, length, structure).
    case malformed
    /// A well-formed id the store does not hold: never issued, deleted, or expired in the store.
    case unknownID = "unknown_id"
    /// The idle or absolute timeout has passed.
    case expired
    /// A sealed cookie whose key id is not in the key ring (retired key, or another deployment's).
    case unknownKey = "unknown_key"
    /// A sealed cookie that fails authentication: tampered, truncated, or forged.
    case tampered
    /// The stored record or the sealed payload could not be decoded (e.g. the app's value type changed).
    case corrupt
}

extension SessionRejection: CustomStringConvertible {
    /// The metrics' reason (`rawValue`) and what it means, for logs and errors.
    public var description: String {
        switch self {
        case .malformed: "malformed (not an id or sealed value this library could have issued)"
        case .unknownID: "unknown_id (never issued, deleted, or expired in the store)"
        case .expired: "expired (idle or absolute timeout passed)"
        case .unknownKey: "unknown_key (sealed with a key id the key ring does not list)"
        case .tampered: "tampered (fails authentication: changed, truncated, forged, or sealed with another key under the same id)"
        case .corrupt: "corrupt (the record or sealed payload could not be decoded)"
        }
    }
}
