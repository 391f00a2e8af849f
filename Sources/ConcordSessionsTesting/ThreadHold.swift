import NIOConcurrencyHelpers

/// Stalls a thread — typically an event loop, to make events pile up in its kernel buffers — until the test
/// releases it, not for a fixed time (a loaded machine can start a fixed-time hold late and overrun it).
///
/// ```swift
/// let hold = ThreadHold()
/// loop.execute { hold.block(atMostSeconds: 10) }
/// #expect(await eventually { hold.isHolding })
/// // … make things happen while the loop is held …
/// hold.release()
/// ```
public final class ThreadHold: Sendable {
    private enum State { case requested, holding, released }
    private let state = ConditionLock(value: State.requested)

    public init() {}

    /// Run on the thread to hold: returns once ``release()`` is called after the hold began, or after `limit`
    /// seconds at most.
    public func block(atMostSeconds limit: Double) {
        state.lock()
        state.unlock(withValue: .holding)
        if state.lock(whenValue: .released, timeoutSeconds: limit) { state.unlock() }
    }

    /// Whether the held thread is blocked now (and not yet released).
    public var isHolding: Bool { state.value == .holding }

    /// Lets the held thread go.
    public func release() {
        state.lock()
        state.unlock(withValue: .released)
    }
}
