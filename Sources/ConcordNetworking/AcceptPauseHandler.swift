import NIOCore

/// Pauses a listener that cannot accept for lack of descriptors (or memory): out of them, the listener stays
/// readable and `accept` fails at every wake-up. NIO's `AcceptBackoffHandler` only delays the next `read()` while
/// the socket stays in epoll, so the loop still spun — ≈ 150,000 failed accepts a second with the proxy at 150 % CPU
/// (2026-12-02, `ulimit -n 100`, 150 clients). Turning `autoRead` off takes the listener out of epoll; it goes back
/// in after `pause`, and clients wait in the kernel's backlog meanwhile. Other accept errors (ECONNABORTED: a
/// client that left) pass on untouched.
///
/// On every listener Concord has: the proxy's (clients, admin, HTTP redirect), the replication listener (as a
/// `serverChannelInitializer`) and `concord app`'s Hummingbird one (added first in its server pipeline from
/// `onServerRunning`, so it sees the error before NIO's backoff handler swallows it: without it the app spun at
/// 100 % CPU, 1.3 s of CPU in 1.5 s with 60 clients under `ulimit -n 40`).
public final class AcceptPauseHandler: ChannelInboundHandler {
    public typealias InboundIn = any Channel
    public typealias InboundOut = any Channel

    private let alarm: LocalResourceAlarm
    private let accepting: String
    private let pause: TimeAmount
    private var resume: Scheduled<Void>?

    /// `accepting`: what the listener accepts, for the log line ("a client connection").
    public init(alarm: LocalResourceAlarm, accepting: String = "a client connection", pause: TimeAmount = .milliseconds(100)) {
        self.alarm = alarm
        self.accepting = accepting
        self.pause = pause
    }

    /// A `serverChannelInitializer` that adds one: every listener of the proxy (clients, admin, HTTP redirect).
    public static func installer(alarm: LocalResourceAlarm, accepting: String = "a client connection") -> @Sendable (any Channel) -> EventLoopFuture<Void> {
        { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(AcceptPauseHandler(alarm: alarm, accepting: accepting))
            }
        }
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let local = LocalResourceFailure(error) else {
            context.fireErrorCaught(error)
            return
        }
        alarm.report(local, while: "accepting \(accepting)", outcome: "accepting paused for \(pause.nanoseconds / 1_000_000) ms")
        guard resume == nil, let options = context.channel.syncOptions else { return }
        try? options.setOption(.autoRead, value: false)
        resume = context.eventLoop.assumeIsolated().scheduleTask(in: pause) { [self] in
            resume = nil
            if context.channel.isActive { try? context.channel.syncOptions?.setOption(.autoRead, value: true) }
        }
    }

    public func channelInactive(context: ChannelHandlerContext) {
        resume?.cancel()
        resume = nil
        context.fireChannelInactive()
    }
}
