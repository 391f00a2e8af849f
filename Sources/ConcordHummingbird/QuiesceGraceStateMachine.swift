/// When a quiescing (gracefully shutting down) server may close an HTTP/1 connection. Pure: the handler
/// (``QuiesceGraceHandler``) feeds it the request heads read, the response ends written, the quiesce event and
/// the grace timer, and carries out what it returns.
///
/// A connection with a request in progress closes after its response, as before. A connection with none is the
/// case this exists for: the client may have sent a request that the server has not read yet (a proxy's fresh
/// connection, a reused keep-alive one). Closing it at once cuts that request off, and a client cannot resend a
/// POST it already sent. So the quiesce is held until the next request head arrives (then that request is
/// answered and the connection closes after it) or the grace runs out (then the connection closes idle).
struct QuiesceGraceStateMachine: Sendable {
    enum Quiesce: Sendable, Equatable {
        case notRequested
        /// Waiting for a request or the end of the grace.
        case held
        /// Passed on: the server's own handling (close now if idle, else after the response) took over.
        case forwarded
    }

    private(set) var requestsInProgress = 0
    private(set) var quiesce = Quiesce.notRequested

    enum QuiesceAction: Sendable, Equatable {
        case forwardQuiesce
        case startGraceTimer
        case doNothing
    }

    /// The server asked the connection to quiesce.
    /// - Parameter channelIsActive: false for a connection accepted after the shutdown began, whose quiesce event
    ///   comes before it is active: the server no longer serves it (nothing would ever read its request or finish
    ///   its NIOAsyncChannel, which traps when released unfinished), so it must close now, as before.
    mutating func quiesceRequested(channelIsActive: Bool) -> QuiesceAction {
        guard quiesce == .notRequested else { return .doNothing }
        if requestsInProgress > 0 || !channelIsActive {
            quiesce = .forwarded
            return .forwardQuiesce
        }
        quiesce = .held
        return .startGraceTimer
    }

    enum HeadAction: Sendable, Equatable {
        /// Pass the head on, then the held quiesce (so the request counts as in progress when it arrives).
        case forwardQuiesceAfterHead
        case doNothing
    }

    mutating func requestHeadRead() -> HeadAction {
        requestsInProgress += 1
        guard quiesce == .held else { return .doNothing }
        quiesce = .forwarded
        return .forwardQuiesceAfterHead
    }

    /// Whether a response head about to be written must say `Connection: close`: once the server quiesces, every
    /// connection closes after its response, and a client told so opens a new connection (to another server)
    /// for its next request instead of sending it into one that is closing.
    func responseHeadMustCloseConnection() -> Bool {
        quiesce != .notRequested
    }

    mutating func responseEndWritten() {
        requestsInProgress = max(0, requestsInProgress - 1)
    }

    /// The grace is over: an idle connection closes now.
    mutating func graceExpired() -> QuiesceAction {
        guard quiesce == .held else { return .doNothing }
        quiesce = .forwarded
        return .forwardQuiesce
    }
}
