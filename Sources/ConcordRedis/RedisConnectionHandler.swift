import NIOCore

/// One command on its way to Redis with the promise its reply completes.
struct RedisRequest: Sendable {
    var command: RedisCommand
    var promise: EventLoopPromise<RESPValue>
}

/// Pipelines commands on one connection: writes each command at once and completes the promises in the order the
/// replies arrive. Writes in one event-loop tick share a single flush, so many concurrent callers cost few syscalls.
final class RedisConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = RESPValue
    typealias OutboundIn = RedisRequest
    typealias OutboundOut = ByteBuffer

    private var pipeline = RedisPipelineStateMachine<EventLoopPromise<RESPValue>>()
    private var flushScheduled = false

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        switch pipeline.send(request.promise) {
        case .write:
            var buffer = context.channel.allocator.buffer(capacity: 64)
            RESPEncoder.encode(request.command, into: &buffer)
            context.write(wrapOutboundOut(buffer), promise: promise)
            scheduleFlush(context: context)
        case .fail(let error):
            request.promise.fail(error)
            promise?.fail(error)
        }
    }

    func flush(context: ChannelHandlerContext) {
        flushScheduled = false
        context.flush()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch pipeline.receive(unwrapInboundIn(data)) {
        case .succeed(let promise):
            promise.succeed(unwrapInboundIn(data))
        case .ignore:
            break
        case .closeConnection(let error):
            failAll(error)
            context.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let reason: RedisClientError =
            if let decoderError = error as? RESPDecoderError {
                .protocolViolation(decoderError.description)
            } else if error is ByteToMessageDecoderError {
                .protocolViolation("\(error)")
            } else {
                .connectionFailed("\(error)")
            }
        failAll(reason)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(.connectionClosed)
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        flushScheduled = false  // the scheduled flush must not touch a context that is gone
        failAll(.connectionClosed)
    }

    private func failAll(_ error: RedisClientError) {
        for promise in pipeline.close(error) { promise.fail(error) }
    }

    /// Flushes after the other tasks already queued on the event loop, which are usually more writes.
    private func scheduleFlush(context: ChannelHandlerContext) {
        guard !flushScheduled else { return }
        flushScheduled = true
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.eventLoop.execute {
            let (handler, context) = loopBound.value
            guard handler.flushScheduled else { return }
            handler.flushScheduled = false
            context.flush()
        }
    }
}
