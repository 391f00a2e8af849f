import Logging
import NIOCore

/// The client and destination addresses a PROXY protocol header named for a connection (`nil` when it named none:
/// `UNKNOWN`, v2 `LOCAL`; the connection's own addresses apply then).
struct ProxiedAddresses {
    var source: SocketAddress?
    var destination: SocketAddress?
}

/// First in a client connection's pipeline when the listener accepts the PROXY protocol (`acceptProxyProtocol`):
/// waits for the header the proxy in front sends (v1 or v2, within the header read timeout), then sets up the rest
/// of the pipeline with the addresses it names (`install`), passes on the bytes that came after the header and
/// leaves. A connection whose first bytes are not a valid header is closed: with the setting on, a client that
/// could name any address it likes must not reach a backend.
final class ProxyProtocolReceiver: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let install: (any Channel, ProxiedAddresses) throws -> Void
    private let timeout: TimeAmount
    private let metrics: ProxyMetrics
    private let logger: Logger
    private var received = ByteBuffer()
    private var timer: Scheduled<Void>?
    private var done = false

    /// Sets a new client connection up with `install`: at once, or — when `runtime`'s listener accepts the PROXY
    /// protocol — behind a receiver, once the header has come (`nil` addresses when the listener does not).
    static func setUp(
        _ channel: any Channel, runtime: ProxyRuntime, install: @escaping (any Channel, ProxiedAddresses?) throws -> Void
    ) throws {
        guard runtime.configuration.acceptProxyProtocol else { return try install(channel, nil) }
        // The header comes first, before any TLS: the rest of the pipeline waits for it.
        try channel.pipeline.syncOperations.addHandler(ProxyProtocolReceiver(
            timeout: TimeAmount(seconds: runtime.configuration.limits.headerReadTimeout), metrics: runtime.metrics,
            logger: runtime.logger, install: install))
    }

    init(timeout: TimeAmount, metrics: ProxyMetrics, logger: Logger, install: @escaping (any Channel, ProxiedAddresses) throws -> Void) {
        self.install = install
        self.timeout = timeout
        self.metrics = metrics
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(in: timeout) {
            let (handler, context) = loopBound.value
            handler.reject("no PROXY protocol header within \(handler.timeout.nanoseconds / 1_000_000) ms", context: context)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !done else { return }
        var bytes = unwrapInboundIn(data)
        received.writeBuffer(&bytes)
        switch ProxyProtocolHeader.parse(received) {
        case .incomplete:
            break  // fewer than `maximumReceivedLength` bytes so far: the parser refuses longer headers itself
        case .invalid(let reason):
            reject(reason, context: context)
        case .header(let length, let source, let destination):
            done = true
            timer?.cancel()
            received.moveReaderIndex(forwardBy: length)
            do {
                try install(context.channel, ProxiedAddresses(source: source, destination: destination))
            } catch {
                context.close(promise: nil)
                return
            }
            let rest = received
            received = ByteBuffer()
            if rest.readableBytes > 0 { context.fireChannelRead(wrapInboundOut(rest)) }
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if done { context.fireChannelReadComplete() }
    }

    /// A client that closes its side before the header (a load balancer's TCP health check does) is done: without
    /// this its connection sat in CLOSE-WAIT until the header timeout, and held up a graceful stop as long.
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if !done, let event = event as? ChannelEvent, event == .inputClosed {
            done = true
            timer?.cancel()
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Before the header nothing behind this handler exists to take the error: the connection just ends.
        guard !done else { return context.fireErrorCaught(error) }
        done = true
        timer?.cancel()
        context.close(promise: nil)
    }

    private func reject(_ reason: String, context: ChannelHandlerContext) {
        guard !done else { return }
        done = true
        timer?.cancel()
        metrics.proxyProtocolRejected.increment()
        logger.debug("PROXY protocol: \(reason) from \(context.channel.remoteAddress?.description ?? "a client"); closing")
        context.close(promise: nil)
    }
}
