import NIOCore
import NIOHTTPTypes

/// Keeps an idle HTTP/1 connection open for a short grace when the server shuts down gracefully, so a request
/// already on its way is answered (and the connection closed after it) instead of cut off; and tells the client
/// so: from then on every response says `Connection: close`.
///
/// Hummingbird closes every connection without a request in progress the moment it quiesces. A connection the
/// client has just opened, or a keep-alive one it has just reused, may carry a request the server has not read
/// yet: the client then sees the connection close without an answer, and a proxy cannot resend a POST it already
/// sent (`scripts/graceful-restart-check`: 19 failed POSTs in 6 restarts without it, none with it). Add it to the
/// HTTP/1 pipeline:
///
/// ```swift
/// let app = Application(
///     router: router,
///     server: .http1(configuration: .init(additionalChannelHandlers: [QuiesceGraceHandler(grace: .milliseconds(500))])))
/// ```
///
/// Shutdown then waits at most `grace` longer for idle connections. It does not help requests on connections the
/// server never accepted (they are reset when the listener closes): for those, drain through the proxy first
/// (`concord app --shutdown-delay`).
public final class QuiesceGraceHandler: ChannelDuplexHandler, RemovableChannelHandler {
    public typealias InboundIn = HTTPRequestPart
    public typealias InboundOut = HTTPRequestPart
    public typealias OutboundIn = HTTPResponsePart
    public typealias OutboundOut = HTTPResponsePart

    public let grace: TimeAmount
    private var state = QuiesceGraceStateMachine()
    private var graceTimer: Scheduled<Void>?

    public init(grace: TimeAmount) {
        self.grace = grace
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head = unwrapInboundIn(data) else {
            context.fireChannelRead(data)
            return
        }
        let action = state.requestHeadRead()
        context.fireChannelRead(data)
        if action == .forwardQuiesceAfterHead {
            cancelGraceTimer()
            context.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        }
    }

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(var head) where head.status.kind != .informational && state.responseHeadMustCloseConnection():
            head.headerFields[.connection] = "close"
            context.write(wrapOutboundOut(.head(head)), promise: promise)
        case .end:
            state.responseEndWritten()
            context.write(data, promise: promise)
        default:
            context.write(data, promise: promise)
        }
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is ChannelShouldQuiesceEvent else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        perform(state.quiesceRequested(channelIsActive: context.channel.isActive), context: context)
    }

    public func channelInactive(context: ChannelHandlerContext) {
        cancelGraceTimer()
        context.fireChannelInactive()
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        cancelGraceTimer()
    }

    private func perform(_ action: QuiesceGraceStateMachine.QuiesceAction, context: ChannelHandlerContext) {
        switch action {
        case .forwardQuiesce:
            cancelGraceTimer()
            context.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        case .startGraceTimer:
            let loopBound = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
            graceTimer = context.eventLoop.scheduleTask(in: grace) {
                let (handler, context) = loopBound.value
                handler.graceTimer = nil
                handler.perform(handler.state.graceExpired(), context: context)
            }
        case .doNothing:
            break
        }
    }

    private func cancelGraceTimer() {
        graceTimer?.cancel()
        graceTimer = nil
    }
}

@available(*, unavailable)
extension QuiesceGraceHandler: Sendable {}
