/// A session as read at the start of a request: the decoded value, its metadata and the version it was read at.
///
/// Not generic: the value is held as `any SessionValue` and cast back to the app's type only where a handler
/// reads it (``SessionHandle/value``). The app's type is known only in the app's module, so generic internals
/// ran unspecialised there, and looking up their type metadata was a sixth of the middleware's cost.
/// An immutable class rather than a struct: a request passes it along several times and the decode cache keeps
/// it, and each copy of a struct with six reference-counted fields cost six retains and releases.
final class SessionSnapshot: Sendable {
    let id: String
    let userID: String?
    let createdAt: Int64
    let lastAccessAt: Int64
    let value: any SessionValue
    /// The value as it was stored, rewritten as is by a touch.
    let encodedValue: [UInt8]
    /// The store version it was read at (0 for sealed-cookie sessions, which have none).
    let version: UInt64

    init(
        id: String, userID: String?, createdAt: Int64, lastAccessAt: Int64, value: any SessionValue,
        encodedValue: [UInt8], version: UInt64
    ) {
        self.id = id
        self.userID = userID
        self.createdAt = createdAt
        self.lastAccessAt = lastAccessAt
        self.value = value
        self.encodedValue = encodedValue
        self.version = version
    }

    /// The same session read at another store version.
    func at(version: UInt64) -> SessionSnapshot {
        version == self.version
            ? self
            : SessionSnapshot(
                id: id, userID: userID, createdAt: createdAt, lastAccessAt: lastAccessAt, value: value,
                encodedValue: encodedValue, version: version)
    }
}
