import Synchronization

/// A request's session, as handlers use it (`context.session`): read the value, change it, log a user in,
/// regenerate the id, destroy the session. Works the same whatever the strategy.
///
/// Changes are recorded and take effect in this request at once; ``SessionManager/commit(_:)`` writes them
/// after the handler returns. Use ``update(_:)`` for changes that must compose with concurrent requests of the
/// same user (adding to a cart): on a version conflict the closure is re-applied to the newest stored value.
///
/// A class because request contexts are copied on their way through middleware; one handle is shared by the
/// middleware and the handler. A `Mutex` makes it safe if a handler uses it from several tasks.
public final class SessionHandle<Value: SessionValue>: Sendable {
    private let box = Mutex(SessionHandleBox())

    /// An empty handle; a ``SessionManager`` fills it from the request (request contexts create one each).
    public init() {}

    /// The session's value (`Value()` when there is none yet).
    public var value: Value {
        // The stored value is always a `Value`: only this handle's typed closures and the manager of the same
        // `Value` put one there.
        (box.withLock { $0.state?.current.value } as? Value) ?? Value()
    }

    /// The session id, or `nil` when no session exists (yet). Never log it: it is a bearer credential.
    public var id: String? { box.withLock { $0.state?.current.id } }

    /// The logged-in user, if any.
    public var userID: String? { box.withLock { $0.state?.current.userID } }

    /// Whether a session exists (loaded, or created by a change in this request).
    public var exists: Bool { id != nil }

    /// What loading found (for metrics and logs): a session, none, or a rejected cookie and why.
    public var loadOutcome: SessionLoadOutcome { box.withLock { $0.outcome } }

    /// Changes the value. Creates the session if there is none. On a concurrent-write conflict the closure runs
    /// again on the newest stored value, so keep it a pure function of its argument (no side effects).
    public func update(_ change: @escaping @Sendable (inout Value) -> Void) {
        record(.update { value in
            var typed = (value as? Value) ?? Value()
            change(&typed)
            value = typed
        })
    }

    /// Replaces the whole value (the last writer wins; prefer ``update(_:)`` for data other requests also change).
    public func set(_ value: Value) {
        record(.update { $0 = value })  // replaces whatever was there, typed or empty
    }

    /// Logs `userID` in (or out with `nil`) and regenerates the id, as OWASP asks on every privilege change.
    public func logIn(userID: String?) {
        record(.setUser(userID))
        record(.regenerate)
    }

    /// Sets the user without a new id (prefer ``logIn(userID:)``).
    public func setUser(_ userID: String?) {
        record(.setUser(userID))
    }

    /// Issues a new id and keeps the data; the old id stops working (session-fixation defence).
    public func regenerate() {
        record(.regenerate)
    }

    /// Ends the session: it is deleted and the browser is told to drop the cookie. Later changes in the same
    /// request start a new session.
    public func destroy() {
        record(.destroy)
    }

    private func record(_ change: SessionChange) {
        box.withLock { box in
            let now = box.wallClock.now
            if box.state == nil { box.state = SessionState(base: nil, cookiePresented: false) }
            box.state!.apply(change, now: now)
        }
    }

    // MARK: For SessionManager

    func attach(_ state: SessionState, wallClock: SessionWallClock, outcome: SessionLoadOutcome, loadedAt: Int64) {
        box.withLock { $0 = SessionHandleBox(state: state, wallClock: wallClock, outcome: outcome, loadedAt: loadedAt) }
    }

    /// Whether committing would do nothing: no change, no touch due as of loading (see
    /// ``SessionState/needsNoCommit(now:touchInterval:)``). Decided in place, without copying the state out.
    func needsNoCommit(touchInterval: Int64) -> Bool {
        box.withLock { box in
            guard box.state != nil else { return true }
            return box.state!.needsNoCommit(now: box.loadedAt, touchInterval: touchInterval)
        }
    }

    func withState<R>(_ body: (inout SessionState?) throws -> R) rethrows -> R {
        try box.withLock { try body(&$0.state) }
    }
}

/// What a ``SessionHandle`` guards. A top-level type, not nested in the generic handle: a nested type depends on
/// `Value`, and its metadata would be looked up at run time on every use (see ``SessionSnapshot``).
private struct SessionHandleBox: Sendable {
    var state: SessionState?
    var wallClock: SessionWallClock = .system
    var outcome: SessionLoadOutcome = .none
    /// The wall-clock time the manager loaded the session at (ms since 1970).
    var loadedAt: Int64 = 0
}
