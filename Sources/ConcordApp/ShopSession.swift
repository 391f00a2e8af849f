import ConcordSessions

/// The demo app's session: who is logged in and what is in the cart.
public struct ShopSession: SessionValue, Equatable {
    public var userName: String?
    public var cart: [String] = []

    public init() {}
}
