import ConcordNetworking
import NIOCore
import NIOPosix

/// The first handler of an L4 client connection: holds reads, picks a backend (client-IP hash, round-robin or
/// least-conn), connects on the same event loop (trying the key's next node once if that fails), optionally
/// writes a PROXY protocol header, then replaces itself with a ``TCPGlueHandler`` pair that streams both ways.
final class TCPProxyHandler: ChannelDuplexHandler, RemovableChannelHandler, BackendQueueWaiter {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let runtime: ProxyRuntime
    private var pick: Balancer.Pick?
    private var keyHash: UInt64?
    private var pendingData: CircularBuffer<NIOAny> = []
    private var closed = false
    private var started = false
    /// The client sent EOF before the backend was connected (NIO reads a half-close even while reads are held).
    private var clientInputClosed = false
    /// The connection's access log line, while the access log is on.
    private var access: AccessLogEntry?
    /// Under `limits.maxRequestsPerBackend`: the connection's wait in its backend's queue (reads stay held), or its
    /// slot — kept for the connection's whole life once glued.
    var queuePosition = BackendQueuePosition()
    let queueSettings: BackendQueuePosition.Settings?
    private var context: ChannelHandlerContext?
    /// The connect attempt of the current pick: 1, or 2 for the key's next node after a failure (a queued connection
    /// goes on with it once admitted).
    private var attempt = 1

    /// What a PROXY protocol header named for this connection (`acceptProxyProtocol`).
    private let proxied: ProxiedAddresses?

    init(runtime: ProxyRuntime, proxied: ProxiedAddresses? = nil) {
        self.runtime = runtime
        self.proxied = proxied
        self.queueSettings = BackendQueuePosition.Settings(runtime.configuration.limits)
    }

    func channelActive(context: ChannelHandlerContext) {
        guard !started else { return }
        started = true
        let peer = ClientAddress(proxied?.source ?? context.channel.remoteAddress)
        if let peer { keyHash = runtime.extractor.ipHash(peer) }
        if runtime.accessLog != nil { access = AccessLogEntry(client: peer?.description ?? "unknown") }
        connect(context: context, excluding: nil, attempt: 1)
        context.fireChannelActive()
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { channelActive(context: context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    private func connect(context: ChannelHandlerContext, excluding: Backend?, attempt: Int) {
        guard pick == nil, !closed else { return }
        guard let chosen = runtime.balancer.pickConnection(balance: runtime.configuration.balance, keyHash: keyHash, excluding: excluding) else {
            runtime.logger.debug("L4: no backend available; closing the client connection")
            access.finish(to: runtime.accessLog, outcome: "no-backend")
            context.close(promise: nil)
            return
        }
        pick = chosen
        self.attempt = attempt
        if let queueSettings {
            switch queuePosition.enter(chosen, settings: queueSettings, metrics: runtime.metrics, waiter: self, on: context.eventLoop) {
            case .admitted: break
            case .queued: return  // queueWaitEnded(_:) goes on
            case .queueFull:
                runtime.logger.debug("L4: the queue of \(chosen.backend) is full (maxQueuePerBackend); closing the connection")
                closeUnconnected(context: context, outcome: "queue-full")
                return
            }
        }
        open(context: context)
    }

    /// Ends a connection that never reached its backend (its queue was full, its wait ran out, its client left).
    private func closeUnconnected(context: ChannelHandlerContext, outcome: StaticString) {
        access.finish(to: runtime.accessLog, outcome: outcome, backend: pick?.backend)
        releasePick()
        closed = true
        context.close(promise: nil)
    }

    /// Connects to the picked backend.
    private func open(context: ChannelHandlerContext) {
        guard let chosen = pick else { return }
        let attempt = self.attempt
        let target = chosen.backend
        let limits = runtime.configuration.limits
        let future = ClientBootstrap(group: context.eventLoop)
            .connectTimeout(TimeAmount(seconds: limits.connectTimeout))
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelInitializer { [backendTLS = runtime.backendTLS] channel in
                channel.eventLoop.makeCompletedFuture {
                    if let backendTLS { try channel.pipeline.syncOperations.addHandler(try backendTLS.clientHandler(for: target)) }
                }
            }
            .connect(to: target.socketAddress)
        future.assumeIsolated().whenComplete { [self] result in
            switch result {
            case .success(let backendChannel):
                guard !closed else {
                    backendChannel.close(promise: nil)
                    return
                }
                runtime.balancer.recordConnectSuccess(target)
                glue(context: context, backendChannel: backendChannel)
            case .failure(let error):
                releasePick()
                if let local = LocalResourceFailure(error) {
                    runtime.balancer.localResources.report(local, while: "L4: connecting to \(target)", outcome: "client connection closed, \(target) keeps its state")
                    access.finish(to: runtime.accessLog, outcome: "connect-failed", backend: target)
                    context.close(promise: nil)
                    return
                }
                runtime.balancer.recordConnectFailure(target)
                if attempt < 2, !closed {
                    runtime.metrics.retries.increment()
                    runtime.logger.debug("L4: connect to \(target) failed (\(ConnectFailure.describe(error))); trying the next node")
                    connect(context: context, excluding: target, attempt: attempt + 1)
                } else {
                    runtime.logger.debug("L4: connect to \(target) failed: \(ConnectFailure.describe(error))")
                    access.finish(to: runtime.accessLog, outcome: "connect-failed", backend: target)
                    context.close(promise: nil)
                }
            }
        }
    }

    private func glue(context: ChannelHandlerContext, backendChannel: any Channel) {
        guard let pick else { return }
        let (clientSide, backendSide) = TCPGlueHandler.matchedPair(
            counters: pick.counters, limits: runtime.configuration.limits)
        do {
            if let version = runtime.configuration.proxyProtocol {
                var header = backendChannel.allocator.buffer(capacity: 64)
                ProxyProtocolHeader.encode(version, source: proxied?.source ?? context.channel.remoteAddress,
                                           destination: proxied?.destination ?? context.channel.localAddress, into: &header)
                backendChannel.write(header, promise: nil)
            }
            try backendChannel.pipeline.syncOperations.addHandler(backendSide)
            try context.pipeline.syncOperations.addHandler(clientSide, position: .after(self))
        } catch {
            backendChannel.close(promise: nil)
            context.close(promise: nil)
            return
        }
        let balancer = runtime.balancer
        let released = pick
        self.pick = nil
        let slot = queuePosition.handOffSlot()
        let limit = queueSettings?.limit
        backendChannel.closeFuture.whenComplete { _ in
            slot?.admission.leave(limit: limit)
            balancer.release(released)
        }
        if let sink = runtime.accessLog, var entry = access {
            // Logged when the pair is done: the backend side closes last or together with the client side.
            access = nil
            entry.backend = released.backend.id
            backendChannel.closeFuture.assumeIsolated().whenComplete { _ in
                entry.bytesIn = clientSide.bytesRead
                entry.bytesOut = backendSide.bytesRead
                entry.write(to: sink, outcome: "closed")
            }
        }
        // Data that arrived before the backend was ready goes first, then reads resume through the glue.
        while let data = pendingData.popFirst() { context.fireChannelRead(data) }
        context.fireChannelReadComplete()
        if clientInputClosed { context.fireUserInboundEventTriggered(ChannelEvent.inputClosed) }
        let channel = context.channel
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        channel.read()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        pendingData.append(data)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            clientInputClosed = true
            if queuePosition.isWaiting && queueSettings?.abortOnClose == true {
                runtime.metrics.queueAborts.increment()
                closeUnconnected(context: context, outcome: "client-closed")
            }
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func read(context: ChannelHandlerContext) {
        // Hold reads until the backend is connected; the glue handler takes over read control afterwards.
    }

    func channelInactive(context: ChannelHandlerContext) {
        closed = true
        access.finish(to: runtime.accessLog, outcome: "client-closed")
        releasePick()
        context.fireChannelInactive()
    }

    private func releasePick() {
        if let pick {
            self.pick = nil
            queuePosition.release(pick, limit: queueSettings?.limit)
            runtime.balancer.release(pick)
        }
    }

    // MARK: Backend queue (limits.maxRequestsPerBackend)

    func queueWaitEnded(_ outcome: BackendAdmission.Outcome) {
        guard let context, !closed else { return }
        switch outcome {
        case .admitted:
            open(context: context)
        case .redispatched:
            releasePick()
            connect(context: context, excluding: nil, attempt: attempt)
        }
    }

    func queueWaitTimedOut() {
        guard let context, let pick, let queueSettings else { return }
        runtime.metrics.queueTimeouts.increment()
        runtime.logger.debug("L4: a connection waited \(queueSettings.timeout) s for \(pick.backend) (maxRequestsPerBackend); closing it")
        closeUnconnected(context: context, outcome: "queue-timeout")
    }
}
