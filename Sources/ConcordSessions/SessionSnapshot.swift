/// A session as read at the start of a request: the decoded value, its metadata and the version it was read at.
///
/// Not generic: the value is held as `any SessionValue` and cast back to the app's type only where a handler
/// reads it (``SessionHandle/value``). The app's type is known only in the app's module, so generic internals
/// ran unspecialised there, and looking up their type metadata was a sixth of the middleware's cost.
struct SessionSnapshot: Sendable {
    var id: String
    var userID: String?
    var createdAt: Int64
    var lastAccessAt: Int64
    var value: any SessionValue
    /// The value as it was stored, rewritten as is by a touch.
    var encodedValue: [UInt8]
    /// The store version it was read at (0 for sealed-cookie sessions, which have none).
    var version: UInt64
}
