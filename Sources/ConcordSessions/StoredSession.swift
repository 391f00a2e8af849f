/// One session as a ``SessionStore`` keeps it: the id, the app's encoded session, the version and the owner.
public struct StoredSession: Sendable, Hashable {
    /// The session id (URL-safe text, at least 128 bits of entropy).
    public var id: String
    /// The encoded session (metadata and the app's value); opaque to the store.
    public var payload: [UInt8]
    /// The version the store holds (set by the store on load; ignored on save, where the store assigns it).
    public var version: UInt64
    /// The user the session belongs to, when logged in; stores index it for ``SessionStore/deleteAll(forUser:)``.
    public var userID: String?

    public init(id: String, payload: [UInt8], version: UInt64 = 0, userID: String? = nil) {
        self.id = id
        self.payload = payload
        self.version = version
        self.userID = userID
    }
}
