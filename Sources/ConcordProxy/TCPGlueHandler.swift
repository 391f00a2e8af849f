import NIOCore

/// One side of an L4 connection pair. Bytes read on one side are written to the other; backpressure holds
/// `read()` on a side while its partner is not writable (so memory stays bounded by the watermarks), and
/// half-close is forwarded: an EOF on one side shuts down the output of the other once its writes are flushed.
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
    private var outputClosed = false
    private let idleTimeout: TimeAmount
    /// When this side last read bytes (both sides share one event loop, so the client side reads its partner's).
    private var lastRead = NIODeadline.now()
    /// Client side only: the pending idle check.
    private var idleCheck: Scheduled<Void>?
    /// Bytes this side has read (and handed to its partner): the access log's per-connection count.
    private(set) var bytesRead = 0

    private init(counters: ProxyMetrics.BackendCounters, isClientSide: Bool, idleTimeout: TimeAmount) {
        self.counters = counters
        self.isClientSide = isClientSide
        self.idleTimeout = idleTimeout
    }

    /// Both sides must be added to channels of the same event loop.
    static func matchedPair(counters: ProxyMetrics.BackendCounters, idleTimeout: TimeAmount) -> (client: TCPGlueHandler, backend: TCPGlueHandler) {
        let client = TCPGlueHandler(counters: counters, isClientSide: true, idleTimeout: idleTimeout)
        let backend = TCPGlueHandler(counters: counters, isClientSide: false, idleTimeout: idleTimeout)
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
            if inputClosed { context.close(promise: nil) }
        }
    }

    private func partnerCloseFull() {
        context?.close(promise: nil)
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
            if outputClosed { context.close(promise: nil) }
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
        if partnerWritable {
            context.read()
        } else {
            pendingRead = true
        }
    }
}
