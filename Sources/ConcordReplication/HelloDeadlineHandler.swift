import NIOCore

/// On a connection the replication listener accepted: closes it unless its first message (a peer's hello) has
/// arrived within `timeout`. Without it a connection that sent nothing, or half a frame, was held open for as long
/// as the other side liked (2026-12-02: 20 s and more), so anyone who could reach the port could tie up connections.
/// It sits behind the frame decoder and leaves the pipeline at the first message.
final class HelloDeadlineHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ReplicationMessage
    typealias InboundOut = ReplicationMessage

    private let timeout: TimeAmount
    private var deadline: Scheduled<Void>?

    init(timeout: TimeAmount) { self.timeout = timeout }

    func handlerAdded(context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        deadline = context.eventLoop.scheduleTask(in: timeout) { loopBound.value.close(promise: nil) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        deadline?.cancel()
        deadline = nil
        context.fireChannelRead(data)
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }
}
