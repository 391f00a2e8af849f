/// One thing a handler did to its session. The list of changes, not the resulting value, is what a request
/// commits: on a version conflict it is re-applied to the freshly read session, so concurrent requests of one
/// user compose instead of overwriting each other.
enum SessionChange: Sendable {
    /// Change the value (`update { … }`). The closure gets `nil` for a session that has no value yet (the app's
    /// `Value()`); ``SessionHandle`` wraps the handler's typed closure.
    case update(@Sendable (inout (any SessionValue)?) -> Void)
    /// Set or clear the logged-in user (indexed by stores for "log out everywhere").
    case setUser(String?)
    /// Move the session to a new id, keeping its data (session-fixation defence).
    case regenerate
    /// End the session: delete it and expire the cookie.
    case destroy
}
