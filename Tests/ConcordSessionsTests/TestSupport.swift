import ConcordSessions
import ConcordSessionsTesting

/// The app session used throughout the tests.
struct ShopSession: SessionValue, Equatable {
    var userName: String?
    var cart: [String] = []
    var note = ""
}

/// One "server": a session manager on a manual clock, and a way to run a request through it.
struct SessionHarness: Sendable {
    let clock: ManualClock
    let manager: SessionManager<ShopSession>

    init(strategy: (ManualClock) -> SessionStrategy, clock: ManualClock = ManualClock(), maximumUpdateAttempts: Int = 8) throws {
        self.clock = clock
        self.manager = try SessionManager(
            configuration: .init(strategy: strategy(clock), maximumUpdateAttempts: maximumUpdateAttempts),
            wallClock: clock.wallClock())
    }

    /// Loads the session `cookie` names, runs `handler`, commits; returns the handle and the cookie update.
    @discardableResult
    func request(
        cookie: String?, _ handler: @Sendable (SessionHandle<ShopSession>) async throws -> Void = { _ in }
    ) async throws -> (session: SessionHandle<ShopSession>, cookie: SessionCookieUpdate) {
        let handle = SessionHandle<ShopSession>()
        try await manager.load(cookieValue: cookie, into: handle)
        try await handler(handle)
        return (handle, try await manager.commit(handle))
    }
}

extension SessionCookieUpdate {
    /// The cookie value this update sets, if any.
    var setValue: String? {
        if case .set(let value, _) = self { value } else { nil }
    }
}
