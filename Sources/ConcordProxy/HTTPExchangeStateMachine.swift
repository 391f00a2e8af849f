import NIOHTTP1

/// The decisions of one L7 client connection, without a channel: which request limits apply, whether a request
/// part is held, forwarded or belongs to the next (pipelined) request, when to retry, and whether the client and
/// backend connections are kept alive once an exchange completes. ``HTTPProxyHandler`` carries the decisions out.
struct HTTPExchangeStateMachine {
    enum State: Equatable {
        /// Between requests: waiting for a head while the keep-alive / header-read timer runs.
        case idle
        /// A head arrived and a backend is being connected. Client reads are paused until the request is
        /// complete and its parts are held, so at most one read's worth is buffered; they are sent once the
        /// connection is up (or to the next candidate on a retry).
        case connecting
        /// A backend is attached: the request streams to it and the response streams back.
        case proxying
        /// The connection is ending (a proxy-made error response is being written, or a side closed); every
        /// further event is ignored.
        case closing
    }

    enum HeadDecision: Equatable {
        case route
        case reject(HTTPResponseStatus)
    }

    enum PartDecision: Equatable {
        /// Keep it until the backend connection is up.
        case hold
        /// Write it to the backend now.
        case forward
        /// It belongs to a later pipelined request; keep it until this exchange is done.
        case queue
        /// The body went over the limit before the response began: answer with this status and close.
        case reject(HTTPResponseStatus)
        /// Nothing sensible is left to do for this connection (e.g. body over the limit mid-response).
        case close
        /// The connection is closing: drop it.
        case drop

        /// The part belongs to the request in progress, which goes on (held or forwarded).
        var isCurrentRequestPart: Bool {
            switch self {
            case .hold, .forward: true
            case .queue, .reject, .close, .drop: false
            }
        }
    }

    enum FailureDecision: Equatable {
        /// Send the request again to the key's next candidate, the failed backend excluded.
        case retry
        /// Send the request again to the same backend on a fresh connection (a pooled one turned out stale).
        case reconnect
        /// Answer the client with this status, then close.
        case respond(HTTPResponseStatus)
        /// The response has begun: the only honest signal left is closing the client connection.
        case close
    }

    enum CompletionDecision: Equatable {
        case keepAlive(reuseBackend: Bool)
        case close(reuseBackend: Bool)
    }

    let limits: ProxyLimits
    private(set) var state = State.idle
    private(set) var keepAlive = false
    private(set) var idempotent = false
    private(set) var requestComplete = false
    private(set) var responseStarted = false
    /// The request asks to switch protocols (``ClientRequestHead/upgrade``). Its client connection never carries
    /// another HTTP request: it becomes a tunnel on a 101, or closes after any other response.
    private(set) var upgradeRequested = false
    private(set) var attempts = 0
    /// The proxy is stopping: no exchange keeps its client connection alive any more (each response says
    /// `Connection: close`), so clients take their next request elsewhere instead of into a closing connection.
    private(set) var stopping = false
    /// A stale pooled connection was replaced by a fresh one for this request (at most once).
    private(set) var reconnected = false
    private var bodyBytes = 0

    init(limits: ProxyLimits) { self.limits = limits }

    /// A request head arrived (framed and checked by ``HTTPRequestFramer``: malformed heads, ambiguous framing and
    /// heads over the size and count limits never get here). CONNECT is refused (405), and a declared body over
    /// the limit is refused before any of it is read (413).
    mutating func receivedHead(_ head: ClientRequestHead) -> HeadDecision {
        guard state == .idle else { return .reject(.badRequest) }
        upgradeRequested = head.upgrade != nil
        keepAlive = head.keepAlive && !upgradeRequested && !stopping
        idempotent = head.isIdempotent
        requestComplete = false
        responseStarted = false
        attempts = 0
        reconnected = false
        bodyBytes = 0
        if head.isCONNECT {
            state = .closing
            return .reject(.methodNotAllowed)
        }
        if let length = head.contentLength, length > limits.maxBodyBytes {
            state = .closing
            return .reject(.payloadTooLarge)
        }
        state = .connecting
        attempts = 1
        return .route
    }

    /// The proxy began to stop. An exchange whose response has not begun closes after it, with `Connection: close`;
    /// one whose response has begun keeps what its head said (changing it now would contradict the head).
    mutating func proxyStopping() {
        stopping = true
        if !responseStarted { keepAlive = false }
    }

    /// `bytes` more of the body's payload (chunk framing not counted).
    mutating func receivedBody(bytes: Int) -> PartDecision {
        guard let decision = currentRequestPart() else { return state == .closing ? .drop : .queue }
        bodyBytes += bytes
        if bodyBytes > limits.maxBodyBytes {
            let started = responseStarted
            state = .closing
            return started ? .close : .reject(.payloadTooLarge)
        }
        return decision
    }

    mutating func receivedEnd() -> PartDecision {
        guard let decision = currentRequestPart() else { return state == .closing ? .drop : .queue }
        requestComplete = true
        return decision
    }

    private func currentRequestPart() -> PartDecision? {
        switch state {
        case .connecting where !requestComplete: .hold
        case .proxying where !requestComplete: .forward
        default: nil
        }
    }

    /// A backend connection is up; held parts go out now.
    mutating func connected() {
        if state == .connecting { state = .proxying }
    }

    /// Connecting failed. Not one byte of the request reached a backend, so whatever its method it goes to the
    /// key's next candidate (as nginx and HAProxy do: a POST to a node that is restarting is not lost); a retry
    /// needs a candidate left and no earlier retry.
    mutating func connectFailed(timedOut: Bool, hasAlternative: Bool) -> FailureDecision {
        guard state == .connecting || state == .proxying else { return .close }
        return retryOrRespond(timedOut ? .gatewayTimeout : .badGateway, hasAlternative: hasAlternative, requestSent: false)
    }

    /// No backend takes new work.
    mutating func noBackend() -> FailureDecision {
        state = .closing
        return .respond(.serviceUnavailable)
    }

    /// The backend connection closed or failed before the response ended. Before the first response byte
    /// nothing has been answered, so an idempotent request is sent again:
    /// - a connection taken from the pool most likely met the backend's idle timeout just as it was reused,
    ///   which says nothing against the backend: once per request, the same backend on a fresh connection
    ///   (`.reconnect`; the session's node, and the only one when there is a single backend). If the backend is
    ///   really gone, that connect fails and the usual retry on the next node still follows;
    /// - a connection opened for this request means the backend is failing: the key's next candidate (`.retry`),
    ///   the same single retry as for a failed connect.
    mutating func backendFailed(reusedConnection: Bool, hasAlternative: Bool) -> FailureDecision {
        guard state == .proxying || state == .connecting else { return .close }
        if responseStarted {
            state = .closing
            return .close
        }
        if reusedConnection && idempotent && !reconnected {
            reconnected = true
            state = .connecting
            return .reconnect
        }
        return retryOrRespond(.badGateway, hasAlternative: hasAlternative, requestSent: true)
    }

    /// A request that may have reached a backend is retried only when idempotent (RFC 9110 §9.2.2); every retry
    /// needs a candidate left and no earlier retry: one retry per request at most.
    private mutating func retryOrRespond(_ status: HTTPResponseStatus, hasAlternative: Bool, requestSent: Bool) -> FailureDecision {
        if (idempotent || !requestSent) && hasAlternative && attempts < 2 {
            attempts += 1
            state = .connecting
            return .retry
        }
        state = .closing
        return .respond(status)
    }

    /// The backend did not answer in time.
    mutating func responseTimedOut() -> FailureDecision {
        guard state == .proxying else { return .close }
        state = .closing
        return responseStarted ? .close : .respond(.gatewayTimeout)
    }

    /// The response's head is on its way to the client. A body that ends when the backend closes can only reach
    /// the client the same way: the client connection closes after it.
    mutating func responseHeadReceived(closeDelimited: Bool = false) {
        responseStarted = true
        if closeDelimited { keepAlive = false }
    }

    /// The backend answered 101 to a request that asked to switch protocols: the exchange is over and the client
    /// connection becomes a tunnel to that backend connection; nothing more is HTTP. `false` if the switch does not
    /// fit (no such request in flight): the handler then closes.
    mutating func switchedProtocols() -> Bool {
        let fits = state == .proxying && upgradeRequested && requestComplete
        state = .closing
        return fits
    }

    /// The backend's response broke HTTP's framing. It is not retried (the backend answered, and would most
    /// likely break it again): 502 if the client has seen nothing of it, otherwise the client connection closes.
    mutating func backendResponseMalformed() -> FailureDecision {
        guard state == .proxying || state == .connecting else { return .close }
        state = .closing
        return responseStarted ? .close : .respond(.badGateway)
    }

    /// The response ended. The client stays if it asked to and its request was read to the end; the backend
    /// connection is pooled if it can carry another request — never after a request that asked to switch
    /// protocols: a backend may stop reading HTTP on such a connection whatever it answered (SwiftNIO's HTTP
    /// server, under Hummingbird and Vapor, parses nothing more), and the next request sent on it would wait for
    /// the response timeout (found 2026-12-03: any client's `Connection: Upgrade` to a plain page cost a later
    /// request 60 s and a 504).
    mutating func responseEnded(backendKeepAlive: Bool) -> CompletionDecision {
        let reuse = backendKeepAlive && requestComplete && !upgradeRequested
        if keepAlive && requestComplete && state == .proxying {
            state = .idle
            return .keepAlive(reuseBackend: reuse)
        }
        state = .closing
        return .close(reuseBackend: reuse)
    }

    /// The client vanished or an error closes the connection.
    mutating func close() {
        state = .closing
    }

    /// Whether reading from the client makes progress now (the handler also waits for backend writability).
    /// Once a request is complete the client is still read — so its next request, or its going away, is seen
    /// without pausing and resuming the socket for every exchange (two `epoll_ctl` calls per request) — until a
    /// part of a later, pipelined request is queued: at most one read's worth of it is buffered. The body of a
    /// request whose backend is still being connected is not read ahead: it is held, not queued. After a complete
    /// request that asks to switch protocols nothing is read until the response decides what the next bytes are.
    func wantsClientReads(hasQueuedParts: Bool) -> Bool {
        if upgradeRequested && requestComplete && state != .idle { return false }
        return switch state {
        case .idle: true
        case .connecting: requestComplete && !hasQueuedParts
        case .proxying: !requestComplete || !hasQueuedParts
        case .closing: false
        }
    }
}
