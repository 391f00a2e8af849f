import NIOCore
import NIOSSL
import Synchronization

/// Why a connection failed, kept past its close: a command written after the close (the connection is already gone
/// from the pipeline) fails with this reason instead of a bare "connection closed" — e.g. a TLS alert that arrived
/// before the connect's first command was written.
final class RedisCloseReason: Sendable {
    private let reason = Mutex<RedisClientError?>(nil)
    /// Whether the reason is a command timeout: read by the pool for every command, so an atomic, not the lock.
    private let timedOut = Atomic<Bool>(false)

    /// Keeps the first reason only.
    func record(_ error: RedisClientError) {
        let first = reason.withLock { current in
            guard current == nil else { return false }
            current = error
            return true
        }
        if first && error.isTimeout { timedOut.store(true, ordering: .releasing) }
    }

    var error: RedisClientError? { reason.withLock { $0 } }

    var isTimeout: Bool { timedOut.load(ordering: .acquiring) }
}

/// One command on its way to Redis with where its reply goes.
struct RedisRequest: Sendable {
    var command: RedisCommand
    var reply: RedisReplyTarget

    init(command: RedisCommand, reply: RedisReplyTarget) {
        self.command = command
        self.reply = reply
    }

    init(command: RedisCommand, promise: EventLoopPromise<RESPValue>) {
        self.init(command: command, reply: .promise(promise))
    }
}

/// Pipelines commands on one connection: writes each command at once and completes the promises in the order the
/// replies arrive. Writes in one event-loop tick share a single flush, so many concurrent callers cost few syscalls;
/// a command sent while nothing else is in flight is flushed at once (no batch to wait for).
///
/// Command timeout: replies arrive in order, so only the oldest pending command can be the first to be late. One
/// timer watches it; when it is late, every pending command fails with ``RedisClientError/timeout(_:)`` and the
/// connection closes (a late reply could no longer be matched to its command).
///
/// Replies are decoded here (``RESPDecoder`` through a `NIOSingleStepByteToMessageProcessor`), not by a
/// `ByteToMessageHandler` in front: every reply then skips one pipeline hop and being boxed into `NIOAny` and cast
/// back. A reply that breaks the protocol or the limits fails every pending command and closes the connection.
final class RedisConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = RedisRequest
    typealias OutboundOut = ByteBuffer

    private struct Waiter {
        var reply: RedisReplyTarget
        var deadline: NIODeadline
    }

    private let commandTimeout: TimeAmount
    private let decoder: NIOSingleStepByteToMessageProcessor<RESPDecoder>
    private var pipeline = RedisPipelineStateMachine<Waiter>()
    private var flushScheduled = false
    private var timer: Scheduled<Void>?
    private let closeReason: RedisCloseReason
    /// Where RESP3 push messages go (a subscription's messages); dropped without it.
    private let onPush: (@Sendable (RESPValue) -> Void)?
    /// Its own context while in the pipeline, for ``send(_:)``.
    private var context: ChannelHandlerContext?
    /// The server, for the error of a connection it closes before any reply (`HOST:PORT`; nil: not said).
    private let peer: String?
    private var sawReply = false

    init(
        commandTimeout: TimeAmount, decoder configuration: RESPDecoderConfiguration, closeReason: RedisCloseReason = RedisCloseReason(),
        peer: String? = nil, onPush: (@Sendable (RESPValue) -> Void)? = nil
    ) {
        self.commandTimeout = commandTimeout
        self.peer = peer
        self.closeReason = closeReason
        self.onPush = onPush
        self.decoder = NIOSingleStepByteToMessageProcessor(
            RESPDecoder(configuration: configuration), maximumBufferSize: configuration.maximumBufferSize)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        send(unwrapOutboundIn(data), context: context, promise: promise)
    }

    /// What `write` does, called by ``RedisConnection`` on the loop with the handler's own context: a command then
    /// skips the pipeline's walk from its tail and being boxed into `NIOAny`.
    func send(_ request: RedisRequest, context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) {
        let waiter = Waiter(reply: request.reply, deadline: context.eventLoop.now + commandTimeout)
        let wasIdle = pipeline.pendingCount == 0
        switch pipeline.send(waiter) {
        case .write:
            if timer == nil { armTimer(context: context, deadline: waiter.deadline) }
            context.write(wrapOutboundOut(Self.encoded(request.command, allocator: context.channel.allocator)), promise: promise)
            if wasIdle && !flushScheduled {
                // Nothing else in flight: no batch to wait for, and a lone caller (concurrency 1) waits on this
                // round trip, so it goes out now instead of after the loop's other tasks.
                context.flush()
            } else {
                scheduleFlush(context: context)
            }
        case .fail(let error):
            // The connection closed before this command: it is not written.
            request.reply.fail(error.notSent())
            promise?.fail(error)
        }
    }

    func flush(context: ChannelHandlerContext) {
        flushScheduled = false
        context.flush()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        do {
            try decoder.process(buffer: unwrapInboundIn(data)) { reply in received(reply, context: context) }
        } catch {
            errorCaught(context: context, error: error)
        }
    }

    private func received(_ reply: RESPValue, context: ChannelHandlerContext) {
        sawReply = true
        if case .push = reply {
            onPush?(reply)
            return
        }
        switch pipeline.receive(reply) {
        case .succeed(let waiter):
            waiter.reply.succeed(reply)
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
            } else if error is ByteToMessageDecoderError.PayloadTooLargeError {
                .protocolViolation("an incomplete reply exceeds the decoder's maximumBufferSize")
            } else if error is ByteToMessageDecoderError {
                .protocolViolation("\(error)")
            } else if error is NIOSSLError || error is BoringSSLError || error is NIOSSLExtraError {
                .connectionLost("TLS: \(error)")
            } else {
                .connectionLost("\(error)")
            }
        closeReason.record(reason)
        failAll(reason)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !sawReply, pipeline.pendingCount > 0, let peer {
            // A server that closes on the first command without a word is seldom Redis (another service on the port,
            // or a TLS port): "connection closed" alone left that to guess (2026-12-03).
            failAll(.connectionLost(
                "\(peer) closed the connection without replying to the first command — does that port speak Redis (RESP)? "
                    + "A TLS port needs rediss://"))
        } else {
            failAll(.connectionClosed)
        }
        context.fireChannelInactive()
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    /// Sends `request` as if written from the pipeline's tail (this handler is the last one). False when the handler
    /// is no longer in the pipeline: nothing would ever answer the request then.
    func send(_ request: RedisRequest) -> Bool {
        guard let context else { return false }
        send(request, context: context, promise: nil)
        return true
    }

    /// Writes `command` with no waiter for a reply: RESP3 answers `SUBSCRIBE` with push messages only.
    func sendUnanswered(_ command: RedisCommand) -> Bool {
        guard let context, pipeline.isOpen else { return false }
        context.writeAndFlush(wrapOutboundOut(Self.encoded(command, allocator: context.channel.allocator)), promise: nil)
        return true
    }

    /// `command` in RESP, in a buffer of exactly its size.
    private static func encoded(_ command: RedisCommand, allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: RESPEncoder.encodedLength(of: command))
        RESPEncoder.encode(command, into: &buffer)
        return buffer
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        flushScheduled = false  // the scheduled flush must not touch a context that is gone
        failAll(.connectionClosed)
    }

    private func failAll(_ error: RedisClientError) {
        timer?.cancel()
        timer = nil
        for waiter in pipeline.close(error) { waiter.reply.fail(error) }
    }

    private func armTimer(context: ChannelHandlerContext, deadline: NIODeadline) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(deadline: deadline) {
            let (handler, context) = loopBound.value
            handler.timer = nil
            guard let oldest = handler.pipeline.oldest else { return }
            if oldest.deadline <= context.eventLoop.now {
                let milliseconds = handler.commandTimeout.nanoseconds / 1_000_000
                let error = RedisClientError.timeout("no reply within \(milliseconds) ms")
                handler.closeReason.record(error)  // the pool backs off a node that stopped answering
                handler.failAll(error)
                context.close(promise: nil)
            } else {
                handler.armTimer(context: context, deadline: oldest.deadline)
            }
        }
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
