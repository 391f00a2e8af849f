import Logging
import NIOCore
import NIOSSL
import NIOTLS

/// Sits right behind a client connection's TLS handler (NIOSSL) and does what the proxy needs of it:
/// - counts completed and failed handshakes (a failure is logged at debug: a plain-HTTP client on the TLS port,
///   a client that trusts no certificate we have, no common version or cipher);
/// - bounds the handshake by `handshakeTimeout` (the header read timeout: the proxy handler behind sees no byte
///   until the handshake is done, so a client that trickles its ClientHello would otherwise only meet the
///   keep-alive timeout);
/// - finishes a close promptly: the TLS handler sends close_notify and waits for the client's, but the proxy
///   handler stops asking for reads after its last response, and a client's bare EOF does not end the wait; so
///   once closing this handler keeps reading and closes the socket at the client's EOF (without it every TLS
///   close would last the TLS handler's shutdown timeout).
/// The error of a failed handshake goes on to the proxy handler, which closes the connection.
final class TLSClientConnectionHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum State { case handshaking, established, failed, closing }

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
        if let event = event as? ChannelEvent, event == .inputClosed, state == .closing {
            // The client's EOF after our close_notify: nothing more can arrive, but the TLS handler would wait
            // for its shutdown timeout (it reads a bare EOF as a "ragged" one and keeps waiting); close the socket
            // from below it now.
            closeSocket(context: context)
        }
        if let tls = event as? TLSUserEvent, case .handshakeCompleted = tls, state == .handshaking {
            state = .established
            handshakeTimer?.cancel()
            metrics.tlsHandshakes.increment()
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        handshakeFailed("failed: \(error)", context: context)
        context.fireErrorCaught(error)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.fireChannelReadComplete()
        if state == .closing { context.read() }
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        if mode == .all { state = .closing }
        context.close(mode: mode, promise: promise)
        if mode == .all && context.channel.isActive { context.read() }
    }

    private func closeSocket(context: ChannelHandlerContext) {
        guard let tls = try? context.pipeline.syncOperations.context(handlerType: NIOSSLServerHandler.self) else {
            context.close(promise: nil)
            return
        }
        tls.close(promise: nil)
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
