#if canImport(Glibc)
import Glibc
#endif
import NIOCore

/// What a backend connection reports to the client connection it currently serves (same event loop).
protocol BackendHTTPDelegate: AnyObject {
    /// A part of the response, as bytes to forward (see ``HTTPResponseFramer``).
    func backendReceived(_ part: HTTPResponseFramer.Part, from connection: BackendHTTPHandler)
    func backendReadComplete(_ connection: BackendHTTPHandler)
    func backendClosed(_ connection: BackendHTTPHandler, error: (any Error)?)
    /// The response broke HTTP's framing rules; the connection is being closed.
    func backendSentMalformedResponse(_ connection: BackendHTTPHandler, error: HTTPResponseFramerError)
    func backendWritabilityChanged(_ connection: BackendHTTPHandler)
    /// The backend answered 101 to a request that asked to switch protocols: `head` goes to the client, and `rest`
    /// (bytes that came after it) plus everything later is the new protocol's. The delegate takes the connection
    /// over (``switchToTunnel(_:)``); this handler has already let go of it.
    func backendSwitchedProtocols(_ head: BackendResponseHead, rest: ByteBuffer, from connection: BackendHTTPHandler)
}

/// The tail of a pooled keep-alive connection to one backend. Requests go out as the bytes the client handler
/// hands it; it frames the response bytes with an ``HTTPResponseFramer`` (no HTTP codec in this pipeline), relays the parts to its delegate and holds back
/// `read()` while the client side cannot take more (backpressure).
final class BackendHTTPHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let backend: Backend
    /// The client connection this one serves. Strong, not `weak`: a weakly referenced object gets a side table,
    /// which sends every retain and release of the client handler down the slow path. The reference is cycle-free
    /// in practice because it is cleared whenever the exchange ends (``close()``, pool release, channel end).
    var delegate: (any BackendHTTPDelegate)?
    /// The pool holding this connection while it is idle (`nil` while it serves an exchange); told when the
    /// connection closes there.
    var idleIn: BackendConnectionPool?
    private(set) var lastUsed = NIODeadline.now()
    private var context: ChannelHandlerContext?
    private var readsPaused = false
    private var readPending = false
    private(set) var isActive = false
    /// The channel's writability, kept from its events: asking the channel costs a lock-free but reference-counted
    /// trip through NIO on every request.
    private(set) var isWritable = false
    /// Whether bytes were written since the last flush (a flush of nothing still walks the pipeline).
    private var unflushed = false
    /// Where a request head's two pieces are joined so they go out as one write (a write costs more in NIO than
    /// copying a head's bytes). Reused: the previous request's write has completed by the time the next one is
    /// sent (its response came back), so clearing it does not allocate.
    private var headScratch = ByteBuffer()
    /// Whether the response in progress allows another request on this connection.
    private(set) var responseKeepAlive = true
    private var framer: HTTPResponseFramer
    /// The start of a response head that has not all arrived; the next read is appended to it.
    private var partialHead: ByteBuffer?

    init(backend: Backend, limits: HTTPResponseFramer.Limits) {
        self.backend = backend
        self.framer = HTTPResponseFramer(limits: limits)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        isActive = context.channel.isActive
        isWritable = context.channel.isWritable
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        isWritable = false
    }

    func channelActive(context: ChannelHandlerContext) {
        isActive = true
        context.fireChannelActive()
    }

    /// Writes a request head (its response comes next: a response to HEAD has no body, one to an HTTP/1.0
    /// request must not be chunked, and only one to a request that asks to switch protocols may be a 101).
    func write(_ head: RequestForwarding.Head, isHEAD: Bool, isHTTP10: Bool, asksUpgrade: Bool = false) {
        framer.requestSent(isHEAD: isHEAD, isHTTP10: isHTTP10, asksUpgrade: asksUpgrade)
        guard let context else { return }
        unflushed = true
        if head.suffix.readableBytes == 0 {
            context.write(wrapOutboundOut(head.prefix), promise: nil)
            return
        }
        headScratch.clear(minimumCapacity: head.readableBytes)
        headScratch.writeImmutableBuffer(head.prefix)
        headScratch.writeImmutableBuffer(head.suffix)
        context.write(wrapOutboundOut(headScratch), promise: nil)
    }

    /// Writes request body bytes as the client sent them.
    func write(_ bytes: ByteBuffer) {
        guard let context else { return }
        unflushed = true
        context.write(wrapOutboundOut(bytes), promise: nil)
    }

    func flush() {
        guard unflushed, let context else { return }
        unflushed = false
        context.flush()
    }

    func close() {
        delegate = nil
        context?.close(promise: nil)
    }

    /// Hands the connection to `tunnel` (after a 101): `tunnel` goes where this handler was, which leaves the
    /// pipeline. Remote half-close is allowed from now on, so an EOF from the backend is passed on as one.
    func switchToTunnel(_ tunnel: some ChannelHandler) throws {
        guard let context else { throw ChannelError.ioOnClosedChannel }
        try context.channel.syncOptions?.setOption(.allowRemoteHalfClosure, value: true)
        try context.pipeline.syncOperations.addHandler(tunnel, position: .after(self))
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    func pauseReads() { readsPaused = true }

    func resumeReads() {
        readsPaused = false
        if readPending, let context {
            readPending = false
            context.read()
        }
    }

    /// Whether the backend has already closed its side although NIO has not read that yet (its FIN waits in the
    /// kernel behind other events of this loop iteration). Asked before a non-idempotent request is sent on a
    /// pooled connection, which could not be resent if it failed: a backend that stops gracefully closes all its
    /// idle connections at once, and without this a POST arriving in the same iteration took one of them (lab,
    /// graceful restart). One `getsockopt(TCP_INFO)`; the answer is synchronous on the connection's own loop.
    var backendHasClosed: Bool {
        #if os(Linux)
        guard let provider = context?.channel as? any SocketOptionProvider else { return false }
        var closed = false
        provider.getTCPInfo().assumeIsolated().whenSuccess { info in
            closed = info.tcpi_state != UInt8(TCP_ESTABLISHED)
        }
        return closed
        #else
        return false
        #endif
    }

    /// Marks the connection as handed to a new exchange.
    func markUsed() {
        lastUsed = .now()
        responseKeepAlive = true
        readsPaused = false
        if readPending, let context {
            readPending = false
            context.read()
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        if var head = partialHead {
            partialHead = nil
            head.writeBuffer(&bytes)
            bytes = head
        }
        guard let delegate else {
            // Bytes on an idle pooled connection: it is out of sync; drop it.
            responseKeepAlive = false
            context.close(promise: nil)
            return
        }
        do throws(HTTPResponseFramerError) {
            while let part = try framer.next(&bytes) {
                switch part {
                case .head(let head), .headAndBody(let head, _):
                    responseKeepAlive = head.keepAlive
                case .end where bytes.readableBytes > 0:
                    // More bytes than the response: the connection is out of sync, never pool it.
                    responseKeepAlive = false
                case .body, .end, .interim:
                    break  // (no interim heads: this framer drops them)
                case .switched(let head):
                    // Not HTTP any more: the delegate moves this connection to a tunnel (and removes this handler).
                    responseKeepAlive = false
                    self.delegate = nil
                    delegate.backendSwitchedProtocols(head, rest: bytes, from: self)
                    return
                }
                delegate.backendReceived(part, from: self)
                // The exchange ended or was abandoned: nothing more is for this delegate.
                if case .end = part { return }
                if self.delegate == nil { return }
            }
            if bytes.readableBytes > 0 { partialHead = bytes }
        } catch {
            responseKeepAlive = false
            self.delegate = nil
            delegate.backendSentMalformedResponse(self, error: error)
            context.close(promise: nil)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        delegate?.backendReadComplete(self)
    }

    func channelInactive(context: ChannelHandlerContext) {
        isActive = false
        if let delegate {
            self.delegate = nil
            if let end = framer.inputClosed() {
                // The close ends a body without length: the response is complete.
                responseKeepAlive = false
                delegate.backendReceived(end, from: self)
            } else if partialHead.map({ $0.readableBytes > 0 }) ?? false {
                // It answered something, then closed: a malformed answer (502, not retried, not a passive health
                // failure), not a connection that closed before any response — an SSH banner or half a head was
                // resent to every backend and marked each of them down (found 2026-12-03).
                delegate.backendSentMalformedResponse(self, error: .truncatedHead)
            } else {
                delegate.backendClosed(self, error: nil)
            }
        } else {
            idleIn?.forget(self)
        }
        idleIn = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let delegate {
            self.delegate = nil
            delegate.backendClosed(self, error: error)
        }
        context.close(promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        isWritable = context.channel.isWritable
        delegate?.backendWritabilityChanged(self)
        context.fireChannelWritabilityChanged()
    }

    func read(context: ChannelHandlerContext) {
        if readsPaused {
            readPending = true
        } else {
            context.read()
        }
    }
}
