import Logging
import NIOCore
import NIOTLS

/// Sits right behind a client connection's TLS handler (NIOSSL) until the handshake ends, and does what the proxy
/// needs of it there:
/// - counts completed and failed handshakes (a failure is logged at debug: a plain-HTTP client on the TLS port,
///   a client that trusts no certificate we have, no common version or cipher);
/// - bounds the handshake by `handshakeTimeout` (the header read timeout: the proxy handler behind sees no byte
///   until the handshake is done, so a client that trickles its ClientHello would otherwise only meet the
///   keep-alive timeout).
/// Once the handshake is done it leaves the pipeline, so an established connection pays no extra hop per read and
/// write. The error of a failed handshake goes on to the proxy handler, which closes the connection.
final class TLSClientConnectionHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private enum State { case handshaking, established, failed }

    private let metrics: ProxyMetrics
    private let logger: Logger
    private let handshakeTimeout: TimeAmount
    private var state = State.handshaking
    private var handshakeTimer: Scheduled<Void>?
    private var context: ChannelHandlerContext?

    init(metrics: ProxyMetrics, logger: Logger, handshakeTimeout: TimeAmount) {
        self.metrics = metrics
        self.logger = logger
        self.handshakeTimeout = handshakeTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { startHandshakeTimer(context: context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        handshakeTimer?.cancel()
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        startHandshakeTimer(context: context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        handshakeTimer?.cancel()
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard let tls = event as? TLSUserEvent, case .handshakeCompleted = tls, state == .handshaking else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        state = .established
        handshakeTimer?.cancel()
        metrics.tlsHandshakes.increment()
        context.fireUserInboundEventTriggered(event)
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        handshakeFailed("failed: \(error)", context: context)
        context.fireErrorCaught(error)
    }

    private func startHandshakeTimer(context: ChannelHandlerContext) {
        guard state == .handshaking, handshakeTimer == nil else { return }
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        handshakeTimer = context.eventLoop.scheduleTask(in: handshakeTimeout) { loopBound.value.handshakeTimedOut() }
    }

    private func handshakeTimedOut() {
        guard state == .handshaking, let context else { return }
        handshakeFailed("did not finish within \(handshakeTimeout.nanoseconds / 1_000_000) ms", context: context)
        context.close(promise: nil)
    }

    /// Counts and logs a handshake that ended without completing (once per connection).
    private func handshakeFailed(_ reason: String, context: ChannelHandlerContext) {
        guard state == .handshaking else { return }
        state = .failed
        handshakeTimer?.cancel()
        metrics.tlsHandshakeFailures.increment()
        logger.debug("TLS handshake with \(context.channel.remoteAddress?.description ?? "a client") \(reason)")
    }
}
