import ConcordNetworking
import NIOCore
import NIOHTTP1
import NIOSSL
import NIOTLS

/// One L7 client connection: picks a backend per request, streams the request to a pooled backend connection
/// and the response back, with backpressure both ways (a side's reads are held while the other side is not
/// writable). Decisions come from ``HTTPExchangeStateMachine``; this class only carries them out.
///
/// Both directions go as bytes, with no HTTP decoder or encoder in either pipeline: requests are framed by
/// ``HTTPRequestFramer`` and go to the backend as they came plus the `X-Forwarded-*` fields (``RequestForwarding``;
/// the head is rebuilt only when a field must go), responses are framed by ``HTTPResponseFramer`` (the head
/// rewritten only when it must change), and the proxy's own responses are ``ProxyResponse``.
///
/// A request that asks to switch protocols (a WebSocket handshake) goes to its key's backend like any other; if
/// the backend answers 101, this handler and the backend connection's leave their pipelines to a
/// ``TCPGlueHandler`` pair, and the two connections are one byte tunnel from then on.
final class HTTPProxyHandler: ChannelDuplexHandler, RemovableChannelHandler, BackendHTTPDelegate, BackendQueueWaiter {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let runtime: ProxyRuntime
    private let pool: BackendConnectionPool
    private var machine: HTTPExchangeStateMachine
    private var context: ChannelHandlerContext?

    private var framer: HTTPRequestFramer
    /// The start of a request head that has not all arrived; the next read is appended to it. After a request
    /// that asks to switch protocols: the bytes that followed it, unframed until the response says what they are.
    private var partialHead: ByteBuffer?
    /// The current request's head as it goes to the backend, and its parts held while connecting.
    private var requestHead: RequestForwarding.Head?
    private var requestIsHEAD = false
    private var held: CircularBuffer<HTTPRequestFramer.Part> = []
    /// Parts of later pipelined requests, replayed when the current exchange completes.
    private var queued: CircularBuffer<HTTPRequestFramer.Part> = []
    private var pick: Balancer.Pick?
    private var keyHash: UInt64?
    private var stickyToken: Substring?
    private var backend: BackendHTTPHandler?
    private var backendWasReused = false
    /// What to answer once the response in flight ends: the bytes after its request were malformed.
    private var malformedNext: HTTPResponseStatus?

    private var readPending = false
    /// The client channel's writability, kept from its events (asking the channel costs reference counting).
    private var clientWritable = true
    private var bytesSinceIdle = false
    /// Bytes of responses written to the client so far, and the progress when the current deadline was set.
    private var forwardedBytes = 0
    private var progressAtDeadline = ResponseProgress(forwarded: 0, pending: 0)
    private var deadline: ConnectionDeadline
    private var deadlineTask: Scheduled<Void>?
    /// The client's address, and how its request heads go to the backend (its X-Forwarded-* fields are made once
    /// per connection).
    private var client = ClientIdentity.notYetKnown
    /// The channel's allocator, kept: reading it through the channel on every request costs reference counting.
    private var allocator = ByteBufferAllocator()
    /// The exchange's access log line, while the access log is on and an exchange is in progress.
    private var access: AccessLogEntry?
    /// The client sent EOF (half-close): what it sent before is answered, then the connection closes.
    private var clientInputClosed = false
    /// Set when the proxy stops (``ProxyStoppingEvent``): an idle connection closes after this grace.
    private var stopGrace: TimeAmount?
    private var stopGraceTask: Scheduled<Void>?
    /// Under `limits.maxRequestsPerBackend`: the exchange's wait in its backend's queue (the machine stays
    /// `connecting` meanwhile, so at most one read's worth of the client is held) or its slot, released with the pick.
    var queuePosition = BackendQueuePosition()
    let queueSettings: BackendQueuePosition.Settings?

    /// What a PROXY protocol header named for this connection (`acceptProxyProtocol`).
    private let proxied: ProxiedAddresses?
    /// On an HTTP/2 stream: its connection's client, made once for all streams.
    private let sharedIdentity: ClientIdentity?

    /// `onHTTP2Stream`: the handler serves one stream of an HTTP/2 connection (whose channel cannot tell its
    /// queued bytes).
    init(runtime: ProxyRuntime, pool: BackendConnectionPool, proxied: ProxiedAddresses? = nil, identity: ClientIdentity? = nil,
         onHTTP2Stream: Bool = false) {
        self.runtime = runtime
        self.countsQueuedBytes = !onHTTP2Stream
        self.pool = pool
        self.proxied = proxied
        self.sharedIdentity = identity
        self.queueSettings = BackendQueuePosition.Settings(runtime.configuration.limits)
        let limits = runtime.configuration.limits
        self.machine = HTTPExchangeStateMachine(limits: limits)
        self.framer = HTTPRequestFramer(limits: .init(maxHeadBytes: limits.maxHeaderBytes, maxHeaderCount: limits.maxHeaderCount))
        self.deadline = ConnectionDeadline(granularity: TimeAmount(
            seconds: min(limits.headerReadTimeout, limits.bodyReadTimeout, limits.keepAliveTimeout, limits.responseTimeout)))
    }

    // MARK: Client side

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        allocator = context.channel.allocator
        clientWritable = context.channel.isWritable
        client = sharedIdentity ?? ClientIdentity(channel: context.channel, runtime: runtime, proxied: proxied)
        if context.channel.isActive { startIdleTimer() }
        // Set up after the handshake (behind ALPN): the certificate is there already and no handshake event will
        // come. (A shared identity has it already.)
        if sharedIdentity == nil, runtime.configuration.tls?.clientCA != nil { forwardClientCertificate(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        startIdleTimer()
        context.fireChannelActive()
    }

    /// After a mutual-TLS handshake: every request of this connection tells the backend which certificate the
    /// client showed (`X-Forwarded-Client-Cert`). Once per connection.
    private func forwardClientCertificate(context: ChannelHandlerContext) {
        let tlsHandler = try? context.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self)
        client = client.presenting(certificateFrom: tlsHandler, runtime: runtime)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        teardown()
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        teardown()
        context.fireChannelInactive()
    }

    private func stickySetCookie(for backend: Backend) -> String {
        ClientResponseHead.stickySetCookie(for: backend, runtime: runtime)
    }

    private func teardown() {
        access.finish(to: runtime.accessLog, outcome: "client-closed")
        machine.close()
        cancelDeadline()
        stopGraceTask?.cancel()
        stopGraceTask = nil
        if let backend {
            // Mid-exchange: the backend connection is out of sync; never pool it.
            self.backend = nil
            backend.close()
        }
        releasePick()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        bytesArrived()
        var bytes = unwrapInboundIn(data)
        if var head = partialHead {
            partialHead = nil
            head.writeBuffer(&bytes)
            bytes = head
        }
        if awaitingSwitch {
            partialHead = bytes
            return
        }
        do throws(HTTPRequestFramerError) {
            while let part = try framer.next(&bytes) {
                handle(part)
                if awaitingSwitch { break }
            }
            if bytes.readableBytes > 0 { partialHead = bytes }
        } catch {
            framingFailed(error)
        }
    }

    /// A complete request asked to switch protocols and its response has not said whether it did: the bytes after
    /// it are either the new protocol's or, after a refusal, never read (the connection closes).
    private var awaitingSwitch: Bool {
        machine.upgradeRequested && machine.requestComplete && (machine.state == .connecting || machine.state == .proxying)
    }

    private func handle(_ part: HTTPRequestFramer.Part) {
        switch part {
        case .head(let head):
            if machine.state != .idle {
                queued.append(part)
                return
            }
            begin(head)
        case .body(_, let payloadBytes):
            let decision = machine.receivedBody(bytes: payloadBytes)
            // Only for the request in progress: a pipelined one's parts wait in `queued` and must not move the
            // current exchange's response timeout.
            if decision.isCurrentRequestPart { armBodyRead() }
            apply(decision, part: part)
        case .end:
            let decision = machine.receivedEnd()
            // The body is whole: from here the response timeout runs, once the request is at a backend.
            if decision.isCurrentRequestPart { deadline.disarm() }
            apply(decision, part: part)
        }
    }

    private func apply(_ decision: HTTPExchangeStateMachine.PartDecision, part: HTTPRequestFramer.Part) {
        switch decision {
        case .hold:
            held.append(part)
        case .forward:
            // An idempotent request is kept until its response begins, so a retry can resend it whole.
            if machine.idempotent { held.append(part) }
            if let backend {
                send(part, to: backend)
                if case .end = part { backend.flush() }
            }
        case .queue:
            queued.append(part)
        case .reject(let status):
            respondWithError(status)
        case .close:
            context?.close(promise: nil)
        case .drop:
            break
        }
        updateClientReads()
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        backend?.flush()
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        clientWritable = context.channel.isWritable
        if clientWritable { backend?.resumeReads() } else { backend?.pauseReads() }
        context.fireChannelWritabilityChanged()
    }

    /// The client's bytes broke HTTP's framing (the framer understands nothing more on this connection).
    private func framingFailed(_ error: HTTPRequestFramerError) {
        let status = error.responseStatus
        if machine.requestComplete && (machine.state == .proxying || machine.state == .connecting) {
            // Malformed bytes after a complete request (the client stays readable while its response is
            // pending): that response is finished first, then the malformed one is answered and closed.
            malformedNext = status
            return
        }
        if machine.state == .idle || (machine.state == .connecting && backend == nil) {
            machine.close()
            respondWithError(status)
            return
        }
        if !machine.responseStarted && (machine.state == .connecting || machine.state == .proxying) {
            // A bad chunk after the head (and perhaps part of the body) went to a backend: that connection holds a
            // request that can never be completed, so it closes; the client still gets its 400 (it used to get a
            // bare close, logged as client-closed).
            abortExchange(respondingWith: status)
            return
        }
        machine.close()
        context?.close(promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        machine.close()
        context.close(promise: nil)
    }

    /// The client half-closed (the channel allows it, so NIO leaves the connection open): complete requests it
    /// sent are still answered — as nginx and HAProxy do — and the connection closes after the last response; a
    /// request cut short by the EOF can never complete, so the connection closes now.
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let stopping = event as? ProxyStoppingEvent {
            proxyStopping(idleGrace: stopping.idleGrace)
            return
        }
        if let tls = event as? TLSUserEvent, case .handshakeCompleted = tls, runtime.configuration.tls?.clientCA != nil {
            forwardClientCertificate(context: context)
        }
        guard let event = event as? ChannelEvent, event == .inputClosed else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        clientInputClosed = true
        switch machine.state {
        case .idle:
            // Nothing in flight (pipelined requests are replayed before the connection goes idle): done.
            machine.close()
            context.close(promise: nil)
        case .connecting, .proxying:
            // A waiting request reached no backend: with abortQueuedOnClose it is dropped, not answered.
            let abandoned = queuePosition.isWaiting && queueSettings?.abortOnClose == true
            if abandoned { runtime.metrics.queueAborts.increment() }
            if abandoned || !machine.requestComplete {
                machine.close()
                context.close(promise: nil)
            }
        case .closing:
            break
        }
    }

    func read(context: ChannelHandlerContext) {
        if shouldReadClient {
            context.read()
        } else {
            readPending = true
        }
    }

    private var shouldReadClient: Bool {
        guard machine.wantsClientReads(hasQueuedParts: !queued.isEmpty) else { return false }
        if machine.state == .proxying, let backend { return backend.isWritable }
        return true
    }

    private func updateClientReads() {
        if readPending && shouldReadClient, let context {
            readPending = false
            context.read()
        }
    }

    // MARK: Stopping

    /// The proxy stops: every response from now on says `Connection: close` and closes its connection; an idle
    /// connection stays open for `idleGrace` (a request already on its way is answered), then closes.
    private func proxyStopping(idleGrace: TimeAmount) {
        stopGrace = idleGrace
        machine.proxyStopping()
        if machine.state == .idle { scheduleStopGrace() }
    }

    private func scheduleStopGrace() {
        guard let stopGrace, let context else { return }
        stopGraceTask?.cancel()
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        stopGraceTask = context.eventLoop.scheduleTask(in: stopGrace) { loopBound.value.stopGraceEnded() }
    }

    private func stopGraceEnded() {
        stopGraceTask = nil
        // A request that has begun to arrive is answered (and its connection closed after it).
        guard machine.state == .idle, !bytesSinceIdle, queued.isEmpty else { return }
        machine.close()
        context?.close(promise: nil)
    }

    // MARK: Timers

    /// `progress`: the response's progress as a deadline look just measured it (with the kernel's count), to
    /// compare the next look with; otherwise measured here.
    private func startIdleTimer(progress: ResponseProgress? = nil) {
        bytesSinceIdle = false
        progressAtDeadline = progress ?? self.progress()
        arm(after: runtime.configuration.limits.keepAliveTimeout)
    }

    /// From the request's end to the response's head, then while the response makes progress (``ResponseProgress``;
    /// `progress` as for ``startIdleTimer(progress:)``).
    private func armResponseTimeout(progress: ResponseProgress? = nil) {
        if let progress {
            progressAtDeadline = progress
        } else if machine.responseStarted {
            progressAtDeadline = self.progress()  // (asking the channel is not free)
        }
        arm(after: runtime.configuration.limits.responseTimeout)
    }

    /// Bytes written to the client that its socket has not taken yet (0 where the channel cannot tell: an HTTP/2
    /// stream's channel traps on the option instead of throwing).
    private var pendingOutputBytes: Int {
        guard countsQueuedBytes else { return 0 }
        return (try? context?.channel.syncOptions?.getOption(.bufferedWritableBytes)) ?? 0
    }
    private let countsQueuedBytes: Bool

    /// The response's progress now; `askingKernel`: with what the client's TCP acknowledged (a system call, so only
    /// when a deadline is looked at).
    private func progress(askingKernel: Bool = false) -> ResponseProgress {
        let pending = pendingOutputBytes
        let delivered = askingKernel && pending > 0 ? context.flatMap { TCPBytesAcked.of(channel: $0.channel) } ?? 0 : 0
        return ResponseProgress(forwarded: forwardedBytes, pending: pending, delivered: delivered)
    }

    /// The request's body is still coming: it may go `bodyReadTimeout` without a byte (re-armed at each one).
    private func armBodyRead() {
        arm(after: runtime.configuration.limits.bodyReadTimeout)
    }

    private func bytesArrived() {
        guard machine.state == .idle, !bytesSinceIdle else { return }
        bytesSinceIdle = true
        arm(after: runtime.configuration.limits.headerReadTimeout)
    }

    /// The current phase times out `seconds` from now (see ``ConnectionDeadline`` for why no task per phase).
    private func arm(after seconds: Double) {
        let now = NIODeadline.now()
        if let due = deadline.arm(at: now + TimeAmount(seconds: seconds), now: now) { scheduleDeadlineTask(at: due) }
    }

    private func scheduleDeadlineTask(at due: NIODeadline) {
        deadlineTask?.cancel()
        deadlineTask = nil
        guard let context else { return }
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        deadlineTask = context.eventLoop.scheduleTask(deadline: due) { loopBound.value.deadlineTaskFired() }
    }

    private func cancelDeadline() {
        deadlineTask?.cancel()
        deadlineTask = nil
        deadline.cancel()
    }

    private func deadlineTaskFired() {
        deadlineTask = nil
        switch deadline.taskFired(now: .now()) {
        case .expired: timedOut()
        case .reschedule(let due): scheduleDeadlineTask(at: due)
        case .idle: break
        }
    }

    private func timedOut() {
        if (machine.state == .connecting || machine.state == .proxying) && !machine.requestComplete {
            bodyTimedOut()
            return
        }
        switch machine.state {
        case .idle where pendingOutputBytes > 0:
            // The last response is still being written to a client that reads slowly: a close now would drop the
            // writes still queued (the client would see a clean end before its Content-Length). It gets another
            // keep-alive period while it takes bytes, and is closed after one in which it took none — the direct
            // engine's rule, and nginx's send_timeout.
            let progress = progress(askingKernel: true)
            if progress.advanced(since: progressAtDeadline) {
                startIdleTimer(progress: progress)
            } else {
                runtime.logger.debug("a client took no bytes of its response for the keep-alive timeout; closing")
                machine.close()
                context?.close(promise: nil)
            }
        case .idle:
            machine.close()
            if bytesSinceIdle { respondWithError(.requestTimeout) } else { context?.close(promise: nil) }
        case .proxying:
            if machine.responseStarted {
                let progress = progress(askingKernel: true)
                if progress.advanced(since: progressAtDeadline) {
                    armResponseTimeout(progress: progress)
                    return
                }
                progress.logStall(since: progressAtDeadline, backend: pick?.backend,
                                  seconds: runtime.configuration.limits.responseTimeout, logger: runtime.logger)
            }
            switch machine.responseTimedOut() {
            case .respond(let status): abortExchange(respondingWith: status)
            default:
                access.finish(to: runtime.accessLog, outcome: "aborted", backend: pick?.backend)
                context?.close(promise: nil)
            }
        case .connecting, .closing:
            break
        }
    }

    /// No byte of the request body for `bodyReadTimeout`. The client stalled — or, when its reads are held because
    /// the backend stopped taking the body, the backend did. Before the response the client gets 408 (504 for the
    /// backend's stall); the backend connection, holding a partial request, is closed either way.
    private func bodyTimedOut() {
        let backendStalled = readPending && machine.state == .proxying && backend.map { !$0.isWritable } == true
        runtime.logger.debug("request body timed out (\(backendStalled ? "the backend stopped reading it" : "the client stopped sending it"))")
        if machine.responseStarted {
            access.finish(to: runtime.accessLog, outcome: "aborted", backend: pick?.backend)
            machine.close()
            backend?.close()
            context?.close(promise: nil)
        } else {
            abortExchange(respondingWith: backendStalled ? .gatewayTimeout : .requestTimeout)
        }
    }

    // MARK: Routing

    private func begin(_ head: ClientRequestHead) {
        deadline.disarm()
        if runtime.accessLog != nil { access = AccessLogEntry(client: client.forwarding.client, head: head) }
        requestVersion = head.isHTTP10 ? .http1_0 : .http1_1
        switch machine.receivedHead(head) {
        case .reject(let status):
            respondWithError(status)
            return
        case .route:
            break
        }
        if head.expectsContinue, let context {
            // Answered here, as nginx does, so the client sends its body at once instead of after its own timeout
            // (the backend's interim responses are dropped by the response framer). The previous exchange is over:
            // nothing else is being written to the client.
            context.writeAndFlush(wrapOutboundOut(Self.continueResponse), promise: nil)
        }
        let configuration = runtime.configuration
        requestHead = client.forwarding.head(for: head, allocator: allocator)
        requestIsHEAD = head.isHEAD
        switch configuration.balance {
        case .hash: keyHash = runtime.extractor.keyHash(for: head, peer: client.peer)
        case .stickyCookie: stickyToken = head.cookie(named: configuration.stickyCookie).map { Substring(head.text($0)) }
        case .roundRobin, .leastConn: break
        }
        // Until its end arrives (at once for a request without a body), the body timeout runs.
        armBodyRead()
        route(excluding: nil)
    }

    private func choose(excluding: Backend?) -> Balancer.Pick? {
        let balancer = runtime.balancer
        switch runtime.configuration.balance {
        case .hash:
            // No key in the request (and no fallback present): spread such requests round-robin.
            if let keyHash { return balancer.pick(keyHash: keyHash, excluding: excluding) }
            return balancer.pickRoundRobin(excluding: excluding)
        case .roundRobin: return balancer.pickRoundRobin(excluding: excluding)
        case .leastConn: return balancer.pickLeastConnections(excluding: excluding)
        case .stickyCookie: return balancer.pick(stickyToken: stickyToken, excluding: excluding)
        }
    }

    private func route(excluding: Backend?) {
        releasePick()
        guard let chosen = choose(excluding: excluding) else {
            if case .respond(let status) = machine.noBackend() { respondWithError(status) }
            return
        }
        connect(chosen)
    }

    private func connect(_ chosen: Balancer.Pick) {
        pick = chosen
        if !queuePosition.holdsSlot, let queueSettings, let context {
            switch queuePosition.enter(chosen, settings: queueSettings, metrics: runtime.metrics, waiter: self, on: context.eventLoop) {
            case .admitted: break
            case .queued: return  // queueWaitEnded(_:) goes on
            case .queueFull:
                runtime.logger.debug("the queue of \(chosen.backend) is full (maxQueuePerBackend); answering 503")
                abortExchange(respondingWith: .serviceUnavailable)
                return
            }
        }
        let target = chosen.backend
        if let idle = pool.takeIdle(for: target, idempotent: machine.idempotent) {
            attach(idle, reused: true)
            return
        }
        connectFresh(to: target)
    }

    // MARK: Backend queue (limits.maxRequestsPerBackend)

    func queueWaitEnded(_ outcome: BackendAdmission.Outcome) {
        guard let pick else { return }
        switch outcome {
        case .admitted:
            connect(pick)
        case .redispatched:
            runtime.logger.debug("\(pick.backend) left or went down while a request waited for it; picking again")
            route(excluding: nil)
        }
    }

    func queueWaitTimedOut() {
        guard let pick, let queueSettings else { return }
        runtime.metrics.queueTimeouts.increment()
        runtime.logger.debug("a request waited \(queueSettings.timeout) s for \(pick.backend) (maxRequestsPerBackend); answering 503")
        abortExchange(respondingWith: .serviceUnavailable)
    }

    private func connectFailed(_ target: Backend, error: any Error) {
        guard machine.state == .connecting else { return }
        if let local = LocalResourceFailure(error) {
            runtime.balancer.localResources.report(local, while: "connecting to \(target)", outcome: "answered 503, \(target) keeps its state")
            abortExchange(respondingWith: .serviceUnavailable)
            return
        }
        runtime.balancer.recordConnectFailure(target)
        let timedOut: Bool
        if case .connectTimeout = error as? ChannelError { timedOut = true } else { timedOut = false }
        switch machine.connectFailed(timedOut: timedOut, hasAlternative: runtime.balancer.backends.count > 1) {
        case .retry:
            retry(excluding: target, after: "connect to \(target) failed (\(ConnectFailure.describe(error)))", otherwise: timedOut ? .gatewayTimeout : .badGateway)
        case .respond(let status):
            runtime.logger.debug("connect to \(target) failed: \(ConnectFailure.describe(error))")
            abortExchange(respondingWith: status)
        case .close, .reconnect:  // `.reconnect` answers a stale pooled connection, never a failed connect
            context?.close(promise: nil)
        }
    }

    /// Sends the request (held in full until its response begins) to the key's next candidate after `target`
    /// failed, or answers `status` when there is none.
    private func retry(excluding target: Backend, after failure: String, otherwise status: HTTPResponseStatus) {
        releasePick()
        guard let next = choose(excluding: target) else {
            runtime.logger.debug("\(failure); no other backend for a retry")
            abortExchange(respondingWith: status, failedBackend: target)
            return
        }
        runtime.metrics.retries.increment()
        runtime.logger.debug("\(failure); retrying on the key's next node \(next.backend)")
        connect(next)
    }

    private func attach(_ connection: BackendHTTPHandler, reused: Bool) {
        backend = connection
        backendWasReused = reused
        connection.delegate = self
        connection.markUsed()
        if !clientWritable { connection.pauseReads() }
        machine.connected()
        if let head = requestHead {
            connection.write(head, isHEAD: requestIsHEAD, isHTTP10: requestVersion == .http1_0, asksUpgrade: machine.upgradeRequested)
        }
        let parts = held
        for part in parts { send(part, to: connection) }
        connection.flush()
        if machine.requestComplete { armResponseTimeout() }
        updateClientReads()
    }

    private func send(_ part: HTTPRequestFramer.Part, to connection: BackendHTTPHandler) {
        switch part {
        case .head: break
        case .body(let buffer, _):
            pick?.counters.bytesToBackend.increment(by: Int64(buffer.readableBytes))
            connection.write(buffer)
        case .end:
            // A chunked body's last chunk and trailers went with its bytes: nothing more to write.
            if !deadline.isArmed { armResponseTimeout() }
        }
    }

    // MARK: Backend side

    func backendReceived(_ part: HTTPResponseFramer.Part, from connection: BackendHTTPHandler) {
        guard connection === backend, let context else { return }
        switch part {
        case .head(let head):
            responseBegan(head)
            let out = clientHead(head)
            access?.bytesOut += out.readableBytes
            forwardedBytes &+= out.readableBytes
            context.write(wrapOutboundOut(out), promise: nil)
            if machine.requestComplete { armResponseTimeout() }
        case .headAndBody(let head, let bytes):
            responseBegan(head)
            let headLength = head.bytes.readableBytes
            pick?.counters.bytesFromBackend.increment(by: Int64(bytes.readableBytes - headLength))
            forwardedBytes &+= bytes.readableBytes
            if headGoesUnchanged(head) {
                access?.bytesOut += bytes.readableBytes
                context.write(wrapOutboundOut(bytes), promise: nil)
            } else {
                let out = clientHead(head)
                access?.bytesOut += out.readableBytes + bytes.readableBytes - headLength
                context.write(wrapOutboundOut(out), promise: nil)
                context.write(wrapOutboundOut(bytes.getSlice(at: bytes.readerIndex + headLength, length: bytes.readableBytes - headLength)!), promise: nil)
            }
            if machine.requestComplete { armResponseTimeout() }
            if !clientWritable { connection.pauseReads() }
        case .body(let buffer):
            access?.bytesOut += buffer.readableBytes
            pick?.counters.bytesFromBackend.increment(by: Int64(buffer.readableBytes))
            forwardedBytes &+= buffer.readableBytes
            context.write(wrapOutboundOut(buffer), promise: nil)
            if !clientWritable { connection.pauseReads() }
        case .end:
            finishExchange(connection: connection)
        case .switched, .interim:
            break  // reported through backendSwitchedProtocols; a backend's interim heads are dropped by its framer
        }
    }

    private func responseBegan(_ head: BackendResponseHead) {
        deadline.disarm()
        access?.status = head.status
        machine.responseHeadReceived(closeDelimited: head.framing == .untilClose)
        held.removeAll(keepingCapacity: true)
    }

    private func headGoesUnchanged(_ head: BackendResponseHead) -> Bool {
        ClientResponseHead.goesUnchanged(head, machine: machine, pick: pick, requestVersion: requestVersion, runtime: runtime)
    }

    private func clientHead(_ head: BackendResponseHead) -> ByteBuffer {
        ClientResponseHead.bytes(head, machine: machine, pick: pick, requestVersion: requestVersion, runtime: runtime, allocator: allocator)
    }

    private var requestVersion: HTTPVersion = .http1_1

    /// The interim response to `Expect: 100-continue`.
    private static let continueResponse = ByteBuffer(string: "HTTP/1.1 100 Continue\r\n\r\n")

    private func finishExchange(connection: BackendHTTPHandler) {
        guard let context else { return }
        let decision = machine.responseEnded(backendKeepAlive: connection.responseKeepAlive)
        access.finish(to: runtime.accessLog, outcome: "done", backend: connection.backend)
        backend = nil
        releasePick()
        switch decision {
        case .keepAlive(let reuse), .close(let reuse):
            if reuse { pool.release(connection) } else { connection.close() }
        }
        requestHead = nil
        held.removeAll(keepingCapacity: true)
        keyHash = nil
        stickyToken = nil
        switch decision {
        case .keepAlive:
            context.flush()
            if let status = malformedNext {
                respondWithError(status)
                return
            }
            startIdleTimer()
            // Kept alive because the response began before the proxy stopped: now idle, it gets the grace.
            if machine.stopping { scheduleStopGrace() }
            replayQueued()
            if clientInputClosed && machine.state == .idle {
                // Half-closed and nothing more to answer: done.
                closeAfterWrites(context)
                return
            }
            updateClientReads()
        case .close:
            closeAfterWrites(context)
        }
    }

    /// Closes once everything written so far is out (an empty write completes after the ones before it).
    private func closeAfterWrites(_ context: ChannelHandlerContext) {
        machine.close()
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(capacity: 0))).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }

    private func replayQueued() {
        while let part = queued.popFirst() {
            handle(part)
            // The replayed request is complete and on its way: later parts wait for its response.
            if machine.state != .idle && machine.requestComplete { break }
        }
    }

    func backendSwitchedProtocols(_ head: BackendResponseHead, rest: ByteBuffer, from connection: BackendHTTPHandler) {
        guard connection === backend, let context, let pick, machine.switchedProtocols() else {
            connection.close()
            context?.close(promise: nil)
            return
        }
        backend = nil
        self.pick = nil
        // A tunnel is no longer a request: it keeps its in-flight load but not a slot under maxRequestsPerBackend.
        queuePosition.release(pick, limit: queueSettings?.limit)
        cancelDeadline()
        held.removeAll()
        let sticky = pick.setsStickyCookie
            ? head.adding((name: "set-cookie", value: stickySetCookie(for: pick.backend)), allocator: allocator)
            : head.bytes
        context.write(wrapOutboundOut(sticky), promise: nil)
        if rest.readableBytes > 0 {
            pick.counters.bytesFromBackend.increment(by: Int64(rest.readableBytes))
            context.write(wrapOutboundOut(rest), promise: nil)
        }
        context.flush()
        let (clientSide, backendSide) = TCPGlueHandler.matchedPair(
            counters: pick.counters, limits: runtime.configuration.limits)
        do {
            try connection.switchToTunnel(backendSide)
            try context.channel.syncOptions?.setOption(.allowRemoteHalfClosure, value: true)
            try context.pipeline.syncOperations.addHandler(clientSide, position: .after(self))
        } catch {
            runtime.logger.warning("could not switch the connection to \(pick.backend) to a tunnel: \(error)")
            runtime.balancer.release(pick)
            connection.close()
            context.close(promise: nil)
            return
        }
        runtime.metrics.upgrades.increment()
        access?.bytesOut += sticky.readableBytes + rest.readableBytes
        access.finish(to: runtime.accessLog, outcome: "upgraded", status: head.status, backend: pick.backend)
        // The tunnel holds its pick (in-flight load, least-conn) for as long as it lasts.
        let balancer = runtime.balancer
        context.channel.closeFuture.whenComplete { _ in balancer.release(pick) }
        if let early = partialHead {
            // What the client sent after its request, before the answer: the new protocol's first bytes.
            partialHead = nil
            context.fireChannelRead(NIOAny(early))
            context.fireChannelReadComplete()
        }
        // A client that half-closed while waiting: the tunnel passes the EOF on to the backend.
        if clientInputClosed { context.fireUserInboundEventTriggered(ChannelEvent.inputClosed) }
        let channel = context.channel
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        channel.read()
    }

    func backendReadComplete(_ connection: BackendHTTPHandler) {
        guard connection === backend else { return }
        context?.flush()
    }

    func backendClosed(_ connection: BackendHTTPHandler, error: (any Error)?) {
        guard connection === backend else { return }
        backend = nil
        let target = connection.backend
        let failure = "backend \(target) closed before responding (\(error.map { "\($0)" } ?? "EOF"))"
        // A connection opened for this request that fails before the response counts against the backend
        // (passive check: what accepts and closes at once is often not the app — Docker's port proxy with the
        // container down — and a TCP health check passes there); a pooled one may only have met the backend's idle
        // timeout, which says nothing.
        if !backendWasReused && !machine.responseStarted {
            runtime.balancer.recordConnectFailure(target, reason: "a new connection closed before any response (passive check)")
        }
        switch machine.backendFailed(reusedConnection: backendWasReused, hasAlternative: runtime.balancer.backends.count > 1) {
        case .reconnect:
            runtime.metrics.retries.increment()
            runtime.logger.debug("\(failure); sending it again on a fresh connection to the same backend")
            connectFresh(to: target)
        case .retry:
            retry(excluding: target, after: failure, otherwise: .badGateway)
        case .respond(let status):
            runtime.logger.debug("\(failure)")
            abortExchange(respondingWith: status)
        case .close:
            access.finish(to: runtime.accessLog, outcome: "aborted", backend: target)
            closeAfterWhatWasWritten()
        }
    }

    /// Closes the client connection in the middle of a response, after what was written of it: a close drops writes
    /// not yet flushed, so a head and a bad chunk that came in one read reached the client as nothing at all (an
    /// empty reply) instead of the response's beginning, cut off.
    private func closeAfterWhatWasWritten() {
        context?.flush()
        context?.close(promise: nil)
    }

    /// Opens a fresh connection to the picked backend `target` for the request (after a stale pooled one, the
    /// pick stays). It starts one event-loop turn later, once the rest of the read that brought the request has
    /// been handled: an HTTP/2 stream reset in the same read (rapid reset, CVE-2023-44487) is gone by then and
    /// costs no backend connection — each used to open one.
    private func connectFresh(to target: Backend) {
        let loopBound = NIOLoopBound(self, eventLoop: pool.eventLoop)
        pool.eventLoop.execute {
            let handler = loopBound.value
            guard handler.context != nil, handler.machine.state == .connecting, handler.pick?.backend == target else { return }
            handler.openFresh(to: target)
        }
    }

    private func openFresh(to target: Backend) {
        let loopBound = NIOLoopBound(self, eventLoop: pool.eventLoop)
        pool.connect(to: target) { result in
            let handler = loopBound.value
            switch result {
            case .success(let fresh) where handler.machine.state == .connecting && handler.pick?.backend == target:
                handler.runtime.balancer.recordConnectSuccess(target)
                handler.attach(fresh, reused: false)
            case .success(let fresh):
                // The request is gone (its client left while the connect ran): the unused connection is pooled.
                handler.pool.release(fresh)
            case .failure(let error):
                handler.connectFailed(target, error: error)
            }
        }
    }

    func backendSentMalformedResponse(_ connection: BackendHTTPHandler, error: HTTPResponseFramerError) {
        guard connection === backend else { return }
        backend = nil
        runtime.logger.warning("backend \(connection.backend) sent a malformed response: \(error)")
        // Not retried: a backend that breaks framing would most likely do so again, and nothing counts against
        // its health (it answered).
        switch machine.backendResponseMalformed() {
        case .respond(let status): abortExchange(respondingWith: status)
        default:
            access.finish(to: runtime.accessLog, outcome: "aborted", backend: connection.backend)
            closeAfterWhatWasWritten()
        }
    }

    func backendWritabilityChanged(_ connection: BackendHTTPHandler) {
        guard connection === backend else { return }
        updateClientReads()
    }

    // MARK: Endings

    /// Answers `status` for an exchange a backend failed. The access line names that backend (`failedBackend`, or
    /// the one picked), so a 502 or 504 says where the request went.
    private func abortExchange(respondingWith status: HTTPResponseStatus, failedBackend: Backend? = nil) {
        if let backend {
            self.backend = nil
            backend.close()
        }
        let failed = failedBackend ?? pick?.backend
        releasePick()
        respondWithError(status, backend: failed)
    }

    private func releasePick() {
        if let pick {
            self.pick = nil
            queuePosition.release(pick, limit: queueSettings?.limit)
            runtime.balancer.release(pick)
        }
    }

    /// Writes a proxy-made response and closes the connection after it is sent.
    private func respondWithError(_ status: HTTPResponseStatus, backend: Backend? = nil) {
        machine.close()
        cancelDeadline()
        if runtime.accessLog != nil {
            if access == nil { access = .unreadRequest(client: client.forwarding.client) }
            access.finish(to: runtime.accessLog, outcome: "proxy-answer", status: Int(status.code), backend: backend)
        }
        guard let context, context.channel.isActive else { return }
        runtime.metrics.proxyResponse(status: Int(status.code))
        let response = ProxyResponse.bytes(status, version: requestVersion, adding: runtime.responseFields, allocator: allocator)
        context.writeAndFlush(wrapOutboundOut(response)).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }
}
