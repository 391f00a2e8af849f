import NIOCore

/// Pauses a listener that cannot accept for lack of descriptors (or memory): out of them, the listener stays
/// readable and `accept` fails at every wake-up. NIO's `AcceptBackoffHandler` only delays the next `read()` while
/// the socket stays in epoll, so the loop still spun — ≈ 150,000 failed accepts a second with the proxy at 150 % CPU
/// (2026-12-02, `ulimit -n 100`, 150 clients). Turning `autoRead` off takes the listener out of epoll; it goes back
/// in after `pause`, and clients wait in the kernel's backlog meanwhile. Other accept errors (ECONNABORTED: a
/// client that left) pass on untouched.
final class AcceptPauseHandler: ChannelInboundHandler {
    typealias InboundIn = any Channel
    typealias InboundOut = any Channel

    private let alarm: LocalResourceAlarm
    private let pause: TimeAmount
    private var resume: Scheduled<Void>?

    init(alarm: LocalResourceAlarm, pause: TimeAmount = .milliseconds(100)) {
        self.alarm = alarm
        self.pause = pause
    }

    /// A `serverChannelInitializer` that adds one: every listener of the proxy (clients, admin, HTTP redirect).
    static func installer(alarm: LocalResourceAlarm) -> @Sendable (any Channel) -> EventLoopFuture<Void> {
        { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(AcceptPauseHandler(alarm: alarm))
            }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let local = LocalResourceFailure(error) else {
            context.fireErrorCaught(error)
            return
        }
        alarm.report(local, while: "accepting a client connection", outcome: "accepting paused for \(pause.nanoseconds / 1_000_000) ms")
        guard resume == nil, let options = context.channel.syncOptions else { return }
        try? options.setOption(.autoRead, value: false)
        resume = context.eventLoop.assumeIsolated().scheduleTask(in: pause) { [self] in
            resume = nil
            if context.channel.isActive { try? context.channel.syncOptions?.setOption(.autoRead, value: true) }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        resume?.cancel()
        resume = nil
        context.fireChannelInactive()
    }
}
