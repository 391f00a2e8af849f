import NIOCore

/// One side of an L4 connection pair. Bytes read on one side are written to the other; backpressure holds
/// `read()` on a side while its partner is not writable (so memory stays bounded by the watermarks), and
/// half-close is forwarded: an EOF on one side shuts down the output of the other once its writes are flushed.
/// When the backend side is gone while the client may still be sending, the client side ends with a
/// ``LingeringClose``: what it has to write is written, its output shut, and its bytes dropped until its EOF.
///
/// The pair closes when no bytes moved either way for `idleTimeout`. The client side keeps that timer itself —
/// one task that re-arms from the last read on either side — rather than an `IdleStateHandler` on each channel,
/// which costs a pipeline hop and a clock read on every read, write and flush.
final class TCPGlueHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var partner: TCPGlueHandler?
    private var context: ChannelHandlerContext?
    private var pendingRead = false
    /// This side's channel writability, kept from its events (the partner asks on every `read()`; asking the
    /// channel costs reference counting).
    private var isWritable = false
    private let counters: ProxyMetrics.BackendCounters
    /// True on the client side: bytes it reads go to the backend.
    private let isClientSide: Bool
    private var inputClosed = false
    /// The partner's EOF is to be passed on: no more writes; the output shuts once they are out.
    private var outputClosed = false
    /// The output is shut (after every write before it went out).
    private var outputShut = false
    /// Client side, the backend gone: its bytes are dropped until its EOF (``LingeringClose``); when that ends at
    /// the latest.
    private var lingering = false
    private var lingerEnd = NIODeadline.distantFuture
    private let idleTimeout: TimeAmount
    private let lingeringTimeout: TimeAmount
    /// When this side last read bytes (both sides share one event loop, so the client side reads its partner's).
    private var lastRead = NIODeadline.now()
    /// Client side only: the pending idle check.
    private var idleCheck: Scheduled<Void>?
    /// Bytes this side has read (and handed to its partner): the access log's per-connection count.
    private(set) var bytesRead = 0

    private init(counters: ProxyMetrics.BackendCounters, isClientSide: Bool, limits: ProxyLimits) {
        self.counters = counters
        self.isClientSide = isClientSide
        self.idleTimeout = TimeAmount(seconds: limits.tcpIdleTimeout)
        self.lingeringTimeout = TimeAmount(seconds: limits.lingeringTimeout)
    }

    /// Both sides must be added to channels of the same event loop.
    static func matchedPair(counters: ProxyMetrics.BackendCounters, limits: ProxyLimits) -> (client: TCPGlueHandler, backend: TCPGlueHandler) {
        let client = TCPGlueHandler(counters: counters, isClientSide: true, limits: limits)
        let backend = TCPGlueHandler(counters: counters, isClientSide: false, limits: limits)
        client.partner = backend
        backend.partner = client
        return (client, backend)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        isWritable = context.channel.isWritable
        lastRead = .now()
        if isClientSide { scheduleIdleCheck(at: lastRead + idleTimeout) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        idleCheck?.cancel()
        idleCheck = nil
        self.context = nil
        isWritable = false
        partner = nil
    }

    // MARK: Idle timeout (client side)

    private func scheduleIdleCheck(at deadline: NIODeadline) {
        guard let context else { return }
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        idleCheck = context.eventLoop.scheduleTask(deadline: deadline) { loopBound.value.checkIdle() }
    }

    private func checkIdle() {
        idleCheck = nil
        guard let context else { return }
        let due = max(lastRead, partner?.lastRead ?? lastRead) + idleTimeout
        if NIODeadline.now() >= due {
            partner?.partnerCloseFull()
            context.close(promise: nil)
        } else {
            scheduleIdleCheck(at: due)
        }
    }

    /// While lingering: closes at `lingerEnd`, or — once the answer is written (the output shut; before, a quiet
    /// client may be reading it slowly) — when the client has sent nothing for `lingeringTimeout`.
    private func scheduleLingerCheck() {
        guard let context else { return }
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let due = outputShut ? min(lastRead + lingeringTimeout, lingerEnd) : lingerEnd
        idleCheck = context.eventLoop.scheduleTask(deadline: due) {
            let handler = loopBound.value
            let now = NIODeadline.now()
            if now >= handler.lingerEnd || (handler.outputShut && now >= handler.lastRead + handler.lingeringTimeout) {
                handler.idleCheck = nil
                handler.context?.close(promise: nil)
            } else {
                handler.scheduleLingerCheck()
            }
        }
    }

    /// (Re)starts the lingering's timer, the client's quiet counted from now.
    private func restartLingerCheck() {
        idleCheck?.cancel()
        lastRead = .now()
        scheduleLingerCheck()
    }

    // MARK: Called by the partner

    private func partnerWrite(_ data: ByteBuffer) {
        context?.write(wrapOutboundOut(data), promise: nil)
    }

    private func partnerFlush() {
        context?.flush()
    }

    /// The partner's peer sent EOF: finish writing, then shut our output.
    private func partnerWriteEOF() {
        guard let context, !outputClosed else { return }
        outputClosed = true
        let promise = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(capacity: 0)), promise: promise)
        promise.futureResult.assumeIsolated().whenComplete { [self] _ in
            guard let context = self.context else { return }
            context.close(mode: .output, promise: nil)
            outputShut = true
            if inputClosed {
                context.close(promise: nil)
            } else if lingering {
                // The answer is out: from now on the client's quiet closes the connection.
                restartLingerCheck()
            }
        }
    }

    /// The partner's channel closed (or failed). The backend side closes too. The client side closes once what was
    /// written to it is out — a close drops writes still queued — and, if its peer may still send, lingers first:
    /// a close with the client's bytes unread would reset the connection, and the kernel would drop what it still
    /// holds of the answer.
    private func partnerCloseFull() {
        guard let context else { return }
        guard isClientSide else {
            context.close(promise: nil)
            return
        }
        partner = nil
        if inputClosed {
            // Nothing more comes from the client: the output's shutdown closes the connection (`partnerWriteEOF`).
            if outputShut { context.close(promise: nil) } else { partnerWriteEOF() }
            return
        }
        guard !lingering, context.channel.isActive else { return }
        lingering = true
        lingerEnd = .now() + .seconds(LingeringClose.maximumSeconds)
        restartLingerCheck()
        // Shuts the output once the answer is out (nothing if it is shut already), which restarts the timer.
        partnerWriteEOF()
        if pendingRead {
            pendingRead = false
            context.read()
        }
    }

    private func partnerBecameWritable() {
        if pendingRead, let context {
            pendingRead = false
            context.read()
        }
    }

    private var partnerWritable: Bool { partner?.isWritable ?? false }

    // MARK: Channel events

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        lastRead = .now()
        if lingering { return }
        bytesRead &+= buffer.readableBytes
        if isClientSide {
            counters.bytesToBackend.increment(by: Int64(buffer.readableBytes))
        } else {
            counters.bytesFromBackend.increment(by: Int64(buffer.readableBytes))
        }
        partner?.partnerWrite(buffer)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        partner?.partnerFlush()
    }

    func channelInactive(context: ChannelHandlerContext) {
        idleCheck?.cancel()
        idleCheck = nil
        partner?.partnerCloseFull()
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            inputClosed = true
            partner?.partnerWriteEOF()
            // Closing before the output is shut would drop the writes still on their way.
            if outputShut { context.close(promise: nil) }
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        partner?.partnerCloseFull()
        context.close(promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        isWritable = context.channel.isWritable
        if isWritable { partner?.partnerBecameWritable() }
        context.fireChannelWritabilityChanged()
    }

    func read(context: ChannelHandlerContext) {
        if partnerWritable || lingering {
            context.read()
        } else {
            pendingRead = true
        }
    }
}
