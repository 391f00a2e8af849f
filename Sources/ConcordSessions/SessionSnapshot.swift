/// A session as read at the start of a request: the decoded value, its metadata and the version it was read at.
struct SessionSnapshot<Value: SessionValue>: Sendable {
    var id: String
    var userID: String?
    var createdAt: Int64
    var lastAccessAt: Int64
    var value: Value
    /// The value as it was stored, rewritten as is by a touch.
    var encodedValue: [UInt8]
    /// The store version it was read at (0 for sealed-cookie sessions, which have none).
    var version: UInt64
}
