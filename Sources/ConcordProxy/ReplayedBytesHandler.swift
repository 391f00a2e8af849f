import NIOCore

/// The first handler of a connection the direct HTTP engine handed to SwiftNIO (``HTTPForwardingLoop``): once the
/// channel is active it passes on the bytes the engine had already read from the socket, ahead of anything read
/// later, and leaves the pipeline.
final class ReplayedBytesHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private var bytes: ByteBuffer?

    init(_ bytes: ByteBuffer) { self.bytes = bytes }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { replay(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        context.fireChannelActive()
        replay(context: context)
    }

    private func replay(context: ChannelHandlerContext) {
        guard let bytes else { return }
        self.bytes = nil
        if bytes.readableBytes > 0 {
            context.fireChannelRead(wrapInboundOut(bytes))
            context.fireChannelReadComplete()
        }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }
}
