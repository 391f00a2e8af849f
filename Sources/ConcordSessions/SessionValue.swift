/// The app's own session data: any `Codable` value with an empty starting state.
///
/// ```swift
/// struct ShopSession: SessionValue {
///     var userName: String?
///     var cart: [String] = []
/// }
/// ```
/// A request without a session sees `init()`; a session is created (and a cookie issued) only when the handler
/// changes something, so anonymous traffic costs no store write.
public protocol SessionValue: Codable, Sendable {
    init()
}
