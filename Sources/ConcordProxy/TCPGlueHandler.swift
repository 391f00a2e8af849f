import NIOCore

/// One side of an L4 connection pair. Bytes read on one side are written to the other; backpressure holds
/// `read()` on a side while its partner is not writable (so memory stays bounded by the watermarks), and
/// half-close is forwarded: an EOF on one side shuts down the output of the other once its writes are flushed.
final class TCPGlueHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var partner: TCPGlueHandler?
    private var context: ChannelHandlerContext?
    private var pendingRead = false
    private let counters: ProxyMetrics.BackendCounters
    /// True on the client side: bytes it reads go to the backend.
    private let isClientSide: Bool
    private var inputClosed = false
    private var outputClosed = false

    private init(counters: ProxyMetrics.BackendCounters, isClientSide: Bool) {
        self.counters = counters
        self.isClientSide = isClientSide
    }

    static func matchedPair(counters: ProxyMetrics.BackendCounters) -> (client: TCPGlueHandler, backend: TCPGlueHandler) {
        let client = TCPGlueHandler(counters: counters, isClientSide: true)
        let backend = TCPGlueHandler(counters: counters, isClientSide: false)
        client.partner = backend
        backend.partner = client
        return (client, backend)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        partner = nil
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

    private var partnerWritable: Bool { partner?.context?.channel.isWritable ?? false }

    // MARK: Channel events

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
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
        partner?.partnerCloseFull()
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            inputClosed = true
            partner?.partnerWriteEOF()
            if outputClosed { context.close(promise: nil) }
        } else if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        partner?.partnerCloseFull()
        context.close(promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { partner?.partnerBecameWritable() }
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
