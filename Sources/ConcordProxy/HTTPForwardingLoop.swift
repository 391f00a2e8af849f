import CConcordSystem
import ConcordNetworking
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1

#if canImport(Glibc)
import Glibc
#endif

/// One thread of the direct HTTP engine (`httpEngine: direct`): its own epoll set, edge-triggered, over its listener,
/// its client connections and its pool of keep-alive backend connections. It runs the same exchange as
/// ``HTTPProxyHandler`` — the same framers, ``HTTPExchangeStateMachine`` for every decision, the same forwarded
/// heads (``RequestForwarding``) and response heads (``ClientResponseHead``) — with plain `read`/`writev` calls
/// instead of two SwiftNIO channels per exchange, whose per-read and per-write work kept the NIO path's CPU per
/// request at 1.15–1.30× nginx's (docs/proxy-benchmarks.md).
///
/// What it does not do itself it hands over, at a request boundary, to the NIO path (``HandOff``): a request that
/// asks to switch protocols (a WebSocket handshake) moves its connection, with the bytes read so far, to a SwiftNIO
/// channel that serves it — a tunnel — from then on.
///
/// Everything below runs on the loop's own thread, except ``send(_:)``.
final class HTTPForwardingLoop: ForwardingLoop, EpollLoopHandler, @unchecked Sendable {
    // @unchecked: the mutable state (connections, pool) is touched only by the loop's thread in `run()`; other
    // threads reach the loop only through its core's commands (locked) and eventfd.

    typealias Command = EpollLoopCore.Command
    /// Moves an accepted client socket, with bytes already read from it, to the NIO path; `proxied`: what its PROXY
    /// protocol header named (already read: the NIO path must not wait for one); `closed` is called once the
    /// connection it becomes has closed.
    typealias HandOff = @Sendable (_ fd: Int32, _ bytes: ByteBuffer, _ proxied: ProxiedAddresses?,
                                   _ closed: @escaping @Sendable () -> Void) -> Void

    /// A client connection.
    private final class Client {
        let id: UInt64
        let fd: Int32
        let runtime: ProxyRuntime
        /// The connection's own peer; the client is who a PROXY protocol header names, when the listener takes one.
        let peer: SocketAddress?
        var identity: HTTPProxyHandler.ClientIdentity
        /// `acceptProxyProtocol`: the header has not come yet (nothing is framed or forwarded until it has).
        var awaitingProxyHeader = false
        /// What the PROXY protocol header named (for a hand-off to the NIO path, which must not wait for another).
        var proxied: ProxiedAddresses?
        var machine: HTTPExchangeStateMachine
        var framer: HTTPRequestFramer
        /// What was read and not framed yet: the start of a head, or a later (pipelined) request.
        var inbound = ByteBuffer()
        var output = OutputQueue()
        /// The current request as the backend gets it (head and held body), kept for a retry until the response
        /// begins (an idempotent request whole; any other until it is sent).
        var request = ByteBuffer()
        var readable = false
        var writable = true
        var peerClosing = false
        /// The client sent EOF: what it sent before is answered, then the connection closes.
        var inputClosed = false
        var closeWhenWritten = false
        /// The next request goes to the NIO path (``HTTPForwardingLoop/handOver(_:)``) once the output is written.
        var handOverWhenWritten = false
        var pick: Balancer.Pick?
        /// `limits.maxRequestsPerBackend` as the connection started with it (`nil`: no queue), and the exchange's
        /// place under it: waiting in its backend's queue, holding a slot, or neither.
        let queueSettings: BackendQueuePosition.Settings?
        var queue = BackendQueuePosition()
        /// When the wait in the backend's queue times out (coarse monotonic nanoseconds; 0: not waiting). Apart from
        /// `deadline`, which the held request body moves.
        var queueDeadline: Int64 = 0
        var keyHash: UInt64?
        var stickyToken: Substring?
        var upstream: Upstream?
        var upstreamWasReused = false
        var requestIsHEAD = false
        var requestVersion = HTTPVersion.http1_1
        /// What to answer once the response in flight ends: the bytes after its request were malformed.
        var malformedNext: HTTPResponseStatus?
        var bytesSinceIdle = false
        /// The response's progress when the current deadline was set (``ResponseProgress``).
        var progressAtDeadline = ResponseProgress(forwarded: 0, pending: 0)
        /// The response's progress now; `askingKernel`: with what the client's TCP acknowledged (a system call, so
        /// only when a deadline is looked at, not at every mark on the hot path).
        func progress(askingKernel: Bool = false) -> ResponseProgress {
            let pending = output.bytes
            return ResponseProgress(forwarded: output.appended, pending: pending,
                                    delivered: askingKernel && pending > 0 ? TCPBytesAcked.of(fd: fd) ?? 0 : 0)
        }
        /// When the current phase times out (coarse monotonic nanoseconds; 0: none).
        var deadline: Int64 = 0
        /// How late after `deadline` a scan may find it (``HTTPForwardingLoop/slack(of:)``); likewise for `queueDeadline`.
        var deadlineSlack: Int64 = 0
        var queueDeadlineSlack: Int64 = 0
        /// The proxy stops: an idle connection closes at this time.
        var stopDeadline: Int64 = 0
        var access: AccessLogEntry?

        init(id: UInt64, fd: Int32, runtime: ProxyRuntime, peer: SocketAddress?) {
            self.id = id
            self.fd = fd
            self.runtime = runtime
            self.peer = peer
            self.identity = HTTPProxyHandler.ClientIdentity(peer: peer, runtime: runtime)
            let limits = runtime.configuration.limits
            self.queueSettings = BackendQueuePosition.Settings(limits)
            machine = HTTPExchangeStateMachine(limits: limits)
            framer = HTTPRequestFramer(limits: .init(maxHeadBytes: limits.maxHeaderBytes, maxHeaderCount: limits.maxHeaderCount))
        }
    }

    /// A connection to a backend: connecting, serving one client's exchange, or idle in the pool.
    private final class Upstream {
        enum State { case connecting, busy, idle }
        let id: UInt64
        let fd: Int32
        let backend: Backend
        var state = State.connecting
        var framer: HTTPResponseFramer
        var inbound = ByteBuffer()
        var output = OutputQueue()
        var readable = false
        var writable = false
        var peerClosing = false
        var client: Client?
        var lastUsed: Int64 = 0
        var connectDeadline: Int64 = 0
        /// Whether the response in progress allows another request on this connection.
        var responseKeepAlive = true

        init(id: UInt64, fd: Int32, backend: Backend, limits: ProxyLimits) {
            self.id = id
            self.fd = fd
            self.backend = backend
            framer = HTTPResponseFramer(limits: .init(maxHeadBytes: limits.maxResponseHeadBytes, maxHeaderCount: limits.maxHeaderCount))
        }
    }

    private static let readSize = 16 * 1024
    /// Unframed client bytes kept while an exchange is in flight (pipelined requests): no more is read past this.
    private static let maxPipelinedBytes = 64 * 1024
    /// Non-idempotent requests reuse only a connection used this recently (``BackendConnectionPool``'s rule).
    private static let freshEnoughForUnsafeRequests: Int64 = 2_000_000_000

    private let core: EpollLoopCore
    private let runtimes: NIOLockedValueBox<ProxyRuntime>
    private let admission: TCPForwardingEngine.Admission
    private let handOff: HandOff
    private let logger: Logger
    private let cpu: Int?
    private let allocator = ByteBufferAllocator()

    private var clients: [UInt64: Client] = [:]
    private var upstreams: [UInt64: Upstream] = [:]
    /// Idle keep-alive connections per backend id, most recently used last.
    private var idle: [String: [Upstream]] = [:]
    private var nextID: UInt64 = 0
    /// The largest read buffer a connection of this loop has had, in bytes: a read buffer is reused from its start
    /// once framed, so this stays near ``readSize`` whatever the bodies' sizes (a 256-MiB response used to grow one
    /// to 256 MiB).
    private(set) var largestReadBuffer = 0
    private var now: Int64 { core.now }
    /// No client's deadline plus its slack comes before this: when the next scan is due (a hint: a deadline moved
    /// later leaves it early, and the scan it causes finds the real next one).
    private var earliestDeadline = Int64.max
    private var lastDeadlineScan: Int64 = 0
    /// Scans made so far (tests).
    private(set) var deadlineScans = 0
    /// Deadlines are looked for at most this often between sweeps (each look visits every client; see also
    /// ``slack(of:)``).
    private static let deadlineScanSpacing: Int64 = 10_000_000
    /// Set when the proxy stops (``proxyStopping(idleGrace:)``).
    private var stopGrace: Int64?

    init(listener: Int32, exclusive: Bool, runtimes: NIOLockedValueBox<ProxyRuntime>, admission: TCPForwardingEngine.Admission,
         handOff: @escaping HandOff, logger: Logger, cpu: Int?) throws(ProxyError) {
        core = try EpollLoopCore(listener: listener, exclusive: exclusive, runtimes: runtimes, logger: logger, role: "HTTP forwarding loop")
        self.runtimes = runtimes
        self.admission = admission
        self.handOff = handOff
        self.logger = logger
        self.cpu = cpu
    }

    func send(_ command: Command) { core.send(command) }

    // MARK: The loop

    func run() { core.run(self, cpu: cpu) }

    /// Until the next sweep, or sooner when a client's deadline comes first (a response timeout of 150 ms is not
    /// kept waiting for a 100-ms sweep).
    var waitTimeout: Int32 {
        if clients.isEmpty && upstreams.isEmpty { return -1 }
        let untilDue = max(earliestDeadline, lastDeadlineScan + Self.deadlineScanSpacing) - now
        guard untilDue < EpollLoopCore.sweepInterval else { return EpollLoopCore.sweepMilliseconds }
        return Int32(max(1, (untilDue + 999_999) / 1_000_000))
    }

    func handle(_ data: UInt64, _ flags: UInt32) {
        if data & 1 == 0 {
            if let client = clients[data >> 1] { clientEvent(client, flags) }
        } else {
            if let upstream = upstreams[data >> 1] { upstreamEvent(upstream, flags) }
        }
    }

    func afterEvents() {
        if now >= earliestDeadline && now >= lastDeadlineScan + Self.deadlineScanSpacing { expireDeadlines() }
    }

    /// Times out the clients whose deadline has come, and finds when the next scan is due. One pass notes the due
    /// clients without copying the table (a copy, with a retain per client, was a fifth of a scan's cost at 19,500
    /// connections), then they are timed out.
    private func expireDeadlines() {
        lastDeadlineScan = now
        deadlineScans += 1
        earliestDeadline = .max
        var due: [Client] = []
        for client in clients.values {
            if (client.deadline != 0 && now >= client.deadline) || (client.queueDeadline != 0 && now >= client.queueDeadline) {
                due.append(client)
            } else {
                noteNextScan(for: client)
            }
        }
        for client in due {
            if client.queueDeadline != 0 && now >= client.queueDeadline {
                client.queueDeadline = 0
                queueWaitTimedOut(client)
            }
            if clients[client.id] != nil && client.deadline != 0 && now >= client.deadline {
                client.deadline = 0
                timedOut(client)
            }
            // (A client that timed out may have a new deadline now, or be gone.)
            if clients[client.id] != nil { noteNextScan(for: client) }
        }
    }

    private func noteNextScan(for client: Client) {
        if client.deadline != 0 { earliestDeadline = min(earliestDeadline, client.deadline + client.deadlineSlack) }
        if client.queueDeadline != 0 { earliestDeadline = min(earliestDeadline, client.queueDeadline + client.queueDeadlineSlack) }
    }

    /// How late a timeout of `span` nanoseconds may be found: 1/16 of it. A scan visits every client, so it must not
    /// come at each deadline: while many pass one after another (keep-alive connections idling out), scans came every
    /// 10 ms, and at 19,500 connections they took ≈ 15 % of a core (`perf`, 2026-12-03). With the slack a 60-s
    /// keep-alive ends within 64 s and scans come every few seconds, while a 150-ms response timeout is still found
    /// within ≈ 10 ms. (Once a scan runs it times out every client whose deadline has passed, slack or not.)
    @inline(__always)
    private static func slack(of span: Int64) -> Int64 { span >> 4 }

    /// Closes every client connection and every backend connection; returns how many clients there were.
    func closeAll() -> Int {
        let open = Array(clients.values)
        for client in open { close(client, outcome: "client-closed") }
        for upstream in Array(upstreams.values) { discard(upstream) }
        return open.count
    }

    /// The proxy stops (on the loop's thread): every response from now on closes its connection, and an idle
    /// connection closes after `idleGrace` seconds (a request already on its way is answered).
    func proxyStopping(idleGrace: Double) {
        stopGrace = Int64(idleGrace * 1e9)
        for client in clients.values {
            client.machine.proxyStopping()
            if client.machine.state == .idle { client.stopDeadline = now + stopGrace! }
        }
    }

    /// Every 100 ms: connects that ran out of time and, once the proxy stops, idle connections past their grace.
    /// (Clients' deadlines are ``afterEvents()``'s: a scan when the earliest is due.)
    func sweep() {
        if stopGrace != nil {
            for client in Array(clients.values) where client.stopDeadline != 0 && now >= client.stopDeadline {
                client.stopDeadline = 0
                if client.machine.state == .idle && !client.bytesSinceIdle && client.inbound.readableBytes == 0 {
                    close(client, outcome: "closed")
                }
            }
        }
        for upstream in Array(upstreams.values) where upstream.state == .connecting && now >= upstream.connectDeadline {
            if let client = upstream.client {
                connectFailed(client, upstream, code: ETIMEDOUT)
            } else {
                discard(upstream)
            }
        }
    }

    // MARK: Accepting

    func accepted(_ fd: Int32, peer: SocketAddress?) {
        let runtime = runtimes.withLockedValue { $0 }
        guard admission.admit(limit: runtime.configuration.limits.maxConnections) else {
            Glibc.close(fd)
            return
        }
        runtime.metrics.activeConnections.increment()
        nextID += 1
        let client = Client(id: nextID, fd: fd, runtime: runtime, peer: peer)
        clients[client.id] = client
        guard core.register(fd, events: EpollLoopCore.socketEvents, data: client.id << 1) else {
            close(client, outcome: "client-closed")
            return
        }
        if runtime.configuration.acceptProxyProtocol {
            client.awaitingProxyHeader = true
            arm(client, after: runtime.configuration.limits.headerReadTimeout)
        } else {
            startIdleTimer(client)
        }
        if let stopGrace {
            client.machine.proxyStopping()
            client.stopDeadline = now + stopGrace
        }
    }

    // MARK: Client side

    private func clientEvent(_ client: Client, _ flags: UInt32) {
        if flags & (Self.epollIn | Self.epollRdHup | Self.epollHup | Self.epollErr) != 0 {
            client.readable = true
            if flags & (Self.epollRdHup | Self.epollHup | Self.epollErr) != 0 { client.peerClosing = true }
        }
        if flags & (Self.epollOut | Self.epollErr | Self.epollHup) != 0 {
            client.writable = true
            guard flushClient(client) else { return }
            // The response's next bytes may wait on its backend connection.
            if client.output.isEmpty, let upstream = client.upstream, upstream.state == .busy, upstream.readable {
                readUpstream(upstream)
                guard clients[client.id] != nil else { return }
            }
        }
        readClient(client)
    }

    /// Writes what waits for the client; false when the connection closed.
    private func flushClient(_ client: Client) -> Bool {
        guard !client.output.isEmpty else { return clients[client.id] != nil }
        guard client.writable else { return true }
        switch client.output.write(to: client.fd) {
        case .blocked:
            client.writable = false
            return true
        case .failed:
            close(client, outcome: "client-closed")
            return false
        case .drained:
            if client.closeWhenWritten {
                close(client, outcome: "closed")
                return false
            }
            if client.handOverWhenWritten {
                handOver(client)
                return false
            }
            return true
        }
    }

    private func write(_ bytes: ByteBuffer, to client: Client) {
        client.output.append(bytes)
    }

    /// Whether reading the client makes progress now: the machine's rule, no unframed bytes piling up, and the
    /// backend connection taking the body.
    private func wantsReads(_ client: Client) -> Bool {
        guard !client.closeWhenWritten, !client.inputClosed, !client.handOverWhenWritten else { return false }
        let hasQueued = client.machine.state != .idle && client.machine.requestComplete && client.inbound.readableBytes > 0
        guard client.machine.wantsClientReads(hasQueuedParts: hasQueued) else { return false }
        if client.inbound.readableBytes >= Self.maxPipelinedBytes && client.machine.state != .idle { return false }
        if client.machine.state == .proxying, let upstream = client.upstream { return upstream.output.isEmpty }
        return true
    }

    /// Reads the client while that makes progress, sending what it frames to the backend before each further read
    /// (so the slices of `inbound` queued for it are gone before `inbound` is written again).
    private func readClient(_ client: Client) {
        while clients[client.id] != nil {
            if let upstream = client.upstream, !upstream.output.isEmpty {
                guard flushUpstream(upstream) else { return }
            }
            guard client.readable && wantsReads(client) else { break }
            switch read(client.fd, into: &client.inbound, readable: &client.readable, peerClosing: client.peerClosing) {
            case .bytes:
                if client.awaitingProxyHeader {
                    guard readProxyHeader(client) else { continue }  // more to come, or rejected (then gone)
                    if client.inbound.readableBytes == 0 { continue }
                }
                bytesArrived(client)
                processClient(client)
            case .drained:
                return
            case .ended:
                clientInputClosed(client)
                return
            case .failed:
                close(client, outcome: "client-closed")
                return
            }
        }
        if clients[client.id] != nil { _ = flushClient(client) }
    }

    // MARK: Receiving a PROXY protocol header (`acceptProxyProtocol`)

    /// Parses the PROXY protocol header from what the client sent so far: true once it has come (its bytes are
    /// consumed, the client is who it names); false while it is incomplete, or when it was invalid (the connection
    /// is closed: with the setting on, a client that could name any address it likes must not reach a backend).
    private func readProxyHeader(_ client: Client) -> Bool {
        switch ProxyProtocolHeader.parse(client.inbound) {
        case .incomplete:
            return false  // fewer than `maximumReceivedLength` bytes so far: the parser refuses longer headers itself
        case .invalid(let reason):
            rejectProxyHeader(client, reason)
            return false
        case .header(let length, let source, let destination):
            client.inbound.moveReaderIndex(forwardBy: length)
            client.awaitingProxyHeader = false
            client.proxied = ProxiedAddresses(source: source, destination: destination)
            // `UNKNOWN` or v2 `LOCAL` (the balancer's own health check): the connection's own peer.
            client.identity = HTTPProxyHandler.ClientIdentity(peer: source ?? client.peer, runtime: client.runtime)
            startIdleTimer(client)
            return true
        }
    }

    private func rejectProxyHeader(_ client: Client, _ reason: String) {
        client.runtime.metrics.proxyProtocolRejected.increment()
        client.runtime.logger.debug("PROXY protocol: \(reason) from \(client.peer?.description ?? "a client"); closing")
        close(client, outcome: "client-closed")
    }

    /// Frames what the client sent, up to the end of the current request (a later one waits for its turn).
    private func processClient(_ client: Client) {
        while clients[client.id] != nil {
            if client.machine.state == .closing { return }
            if client.machine.state != .idle && client.machine.requestComplete { break }
            let mark = client.inbound.readerIndex
            let part: HTTPRequestFramer.Part?
            do throws(HTTPRequestFramerError) {
                part = try client.framer.next(&client.inbound)
            } catch {
                framingFailed(client, error)
                return
            }
            guard let part else { break }
            switch part {
            case .head(let head):
                if head.upgrade != nil {
                    client.inbound.moveReaderIndex(to: mark)
                    // After the previous response is all written: the NIO channel starts with nothing pending.
                    if client.output.isEmpty { handOver(client) } else { client.handOverWhenWritten = true }
                    return
                }
                begin(client, head)
            case .body(let bytes, let payloadBytes):
                let decision = client.machine.receivedBody(bytes: payloadBytes)
                if decision.isCurrentRequestPart { armBodyRead(client) }
                apply(decision, bytes, to: client)
            case .end:
                let decision = client.machine.receivedEnd()
                if decision.isCurrentRequestPart { client.deadline = 0 }
                apply(decision, nil, to: client)
            }
        }
        Self.reuseFromStart(&client.inbound)
    }

    private func apply(_ decision: HTTPExchangeStateMachine.PartDecision, _ bytes: ByteBuffer?, to client: Client) {
        switch decision {
        case .hold:
            if var bytes { client.request.writeBuffer(&bytes) }
        case .forward:
            guard let upstream = client.upstream else { return }
            if let bytes {
                if client.machine.idempotent { client.request.writeImmutableBuffer(bytes) }
                client.pick?.counters.bytesToBackend.increment(by: Int64(bytes.readableBytes))
                upstream.output.append(bytes)
            } else if client.deadline == 0 {
                armResponseTimeout(client)
            }
        case .reject(let status):
            respondWithError(client, status)
        case .close:
            close(client, outcome: "aborted")
        case .queue, .drop:
            break
        }
    }

    /// The client's bytes broke HTTP's framing.
    private func framingFailed(_ client: Client, _ error: HTTPRequestFramerError) {
        let status = error.responseStatus
        let machine = client.machine
        if machine.requestComplete && (machine.state == .proxying || machine.state == .connecting) {
            client.malformedNext = status
            return
        }
        if machine.state == .idle || (machine.state == .connecting && client.upstream == nil) {
            respondWithError(client, status)
            return
        }
        if !machine.responseStarted && (machine.state == .connecting || machine.state == .proxying) {
            abortExchange(client, respondingWith: status)
            return
        }
        close(client, outcome: "aborted")
    }

    /// The client sent EOF.
    private func clientInputClosed(_ client: Client) {
        client.inputClosed = true
        switch client.machine.state {
        case .idle:
            if client.inbound.readableBytes > 0 {
                // Half a head, then EOF: it can never complete.
                close(client, outcome: "client-closed")
            } else {
                close(client, outcome: "closed")
            }
        case .connecting, .proxying:
            if abortQueuedOnClose(client) { return }
            if !client.machine.requestComplete { close(client, outcome: "client-closed") }
        case .closing:
            break
        }
    }

    /// Moves the client connection to the NIO path, with every byte it sent from the current request on.
    private func handOver(_ client: Client) {
        let bytes = client.inbound.slice()
        core.unregister(client.fd)
        clients[client.id] = nil
        client.access = nil
        releasePick(client)
        client.runtime.metrics.activeConnections.decrement()
        // It keeps its place under `maxConnections` (this engine's count) until the channel closes: the NIO path's
        // own count would let both engines hold the limit each.
        let admission = self.admission
        handOff(client.fd, bytes, client.proxied) { admission.leave() }
    }

    // MARK: Reading

    private enum ReadOutcome {
        /// Bytes were added to the buffer.
        case bytes
        /// Nothing more to read now (`EAGAIN`).
        case drained
        /// The peer's EOF.
        case ended
        /// A reset or another error.
        case failed
    }

    /// One read of at most ``readSize`` bytes from `fd` into `buffer`. `readable` is cleared when the socket is
    /// drained: by `EAGAIN`, at the end, or by a short read (unless the peer's FIN is pending: it is read on to the 0).
    private func read(_ fd: Int32, into buffer: inout ByteBuffer, readable: inout Bool, peerClosing: Bool) -> ReadOutcome {
        buffer.reserveCapacity(minimumWritableBytes: Self.readSize)
        largestReadBuffer = max(largestReadBuffer, buffer.capacity)
        while true {
            let count = buffer.withUnsafeMutableWritableBytes { Glibc.read(fd, $0.baseAddress, min($0.count, Self.readSize)) }
            if count > 0 {
                buffer.moveWriterIndex(forwardBy: count)
                if count < Self.readSize && !peerClosing { readable = false }
                return .bytes
            }
            let code = errno
            if count < 0 && code == EINTR { continue }
            readable = false
            if count == 0 { return .ended }
            return code == EAGAIN || code == EWOULDBLOCK ? .drained : .failed
        }
    }

    /// A read buffer whose framed bytes have gone on is written again from its start, instead of growing with what
    /// passes through it (a 256-MiB response took the proxy to 266 MB before).
    private static func reuseFromStart(_ buffer: inout ByteBuffer) {
        if buffer.readableBytes == 0 {
            buffer.clear()
        } else if buffer.readerIndex > readSize {
            buffer.discardReadBytes()
        }
    }

    // MARK: Timers

    private func arm(_ client: Client, after seconds: Double) {
        let span = Int64(seconds * 1e9)
        client.deadline = now + span
        client.deadlineSlack = Self.slack(of: span)
        if client.deadline + client.deadlineSlack < earliestDeadline { earliestDeadline = client.deadline + client.deadlineSlack }
    }

    /// `progress`: the response's progress as a deadline look just measured it (with the kernel's count), to
    /// compare the next look with; otherwise measured here.
    private func startIdleTimer(_ client: Client, progress: ResponseProgress? = nil) {
        client.bytesSinceIdle = false
        client.progressAtDeadline = progress ?? client.progress()
        arm(client, after: client.runtime.configuration.limits.keepAliveTimeout)
    }

    /// From the request's end to the response's head, then while the response makes progress (``ResponseProgress``;
    /// `progress` as for ``startIdleTimer(_:progress:)``).
    private func armResponseTimeout(_ client: Client, progress: ResponseProgress? = nil) {
        client.progressAtDeadline = progress ?? client.progress()
        arm(client, after: client.runtime.configuration.limits.responseTimeout)
    }

    private func armBodyRead(_ client: Client) {
        arm(client, after: client.runtime.configuration.limits.bodyReadTimeout)
    }

    private func bytesArrived(_ client: Client) {
        guard client.machine.state == .idle, !client.bytesSinceIdle else { return }
        client.bytesSinceIdle = true
        arm(client, after: client.runtime.configuration.limits.headerReadTimeout)
    }

    private func timedOut(_ client: Client) {
        if client.awaitingProxyHeader {
            let seconds = client.runtime.configuration.limits.headerReadTimeout
            rejectProxyHeader(client, "no PROXY protocol header within \(Int(seconds * 1000)) ms")
            return
        }
        let machine = client.machine
        if (machine.state == .connecting || machine.state == .proxying) && !machine.requestComplete {
            let backendStalled = machine.state == .proxying && client.upstream.map { !$0.output.isEmpty } == true
            if machine.responseStarted {
                close(client, outcome: "aborted")
            } else {
                abortExchange(client, respondingWith: backendStalled ? .gatewayTimeout : .requestTimeout)
            }
            return
        }
        switch machine.state {
        case .idle where !client.output.isEmpty:
            // The last response is still being written to a client that reads slowly: closing now would cut it off
            // (the client would see a clean end before its Content-Length). It gets another keep-alive period while
            // it takes bytes, and is closed after one in which it took none, as nginx's send_timeout does.
            let progress = client.progress(askingKernel: true)
            if progress.advanced(since: client.progressAtDeadline) {
                startIdleTimer(client, progress: progress)
            } else {
                client.runtime.logger.debug("a client took no bytes of its response for the keep-alive timeout; closing")
                close(client, outcome: "client-closed")
            }
        case .idle:
            if client.bytesSinceIdle { respondWithError(client, .requestTimeout) } else { close(client, outcome: "closed") }
        case .proxying:
            if machine.responseStarted {
                let progress = client.progress(askingKernel: true)
                if progress.advanced(since: client.progressAtDeadline) {
                    armResponseTimeout(client, progress: progress)
                    return
                }
                progress.logStall(since: client.progressAtDeadline, backend: client.upstream?.backend,
                                  seconds: client.runtime.configuration.limits.responseTimeout, logger: client.runtime.logger)
            }
            switch client.machine.responseTimedOut() {
            case .respond(let status): abortExchange(client, respondingWith: status)
            default: close(client, outcome: "aborted")
            }
        case .connecting, .closing:
            break
        }
    }

    // MARK: Routing

    private func begin(_ client: Client, _ head: ClientRequestHead) {
        client.deadline = 0
        let runtime = client.runtime
        if runtime.accessLog != nil { client.access = AccessLogEntry(client: client.identity.forwarding.client, head: head) }
        client.requestVersion = head.isHTTP10 ? .http1_0 : .http1_1
        switch client.machine.receivedHead(head) {
        case .reject(let status):
            respondWithError(client, status)
            return
        case .route:
            break
        }
        if head.expectsContinue {
            // Answered here, as nginx does and as the NIO path does, so the client sends its body at once instead of
            // after its own timeout (the backend's interim responses are dropped by the response framer). The
            // previous response is all in the output queue already: this goes after it.
            write(Self.continueResponse, to: client)
        }
        let forwarded = client.identity.forwarding.head(for: head, allocator: allocator)
        client.request.clear()
        client.request.writeImmutableBuffer(forwarded.prefix)
        client.request.writeImmutableBuffer(forwarded.suffix)
        client.requestIsHEAD = head.isHEAD
        switch runtime.configuration.balance {
        case .hash: client.keyHash = runtime.extractor.keyHash(for: head, peer: client.identity.peer)
        case .stickyCookie: client.stickyToken = head.cookie(named: runtime.configuration.stickyCookie).map { Substring(head.text($0)) }
        case .roundRobin, .leastConn: break
        }
        armBodyRead(client)
        route(client, excluding: nil)
    }

    /// The interim response to `Expect: 100-continue`.
    private static let continueResponse = ByteBuffer(string: "HTTP/1.1 100 Continue\r\n\r\n")

    private func choose(_ client: Client, excluding: Backend?) -> Balancer.Pick? {
        let balancer = client.runtime.balancer
        if client.runtime.configuration.balance == .stickyCookie {
            return balancer.pick(stickyToken: client.stickyToken, excluding: excluding)
        }
        return balancer.pickConnection(balance: client.runtime.configuration.balance, keyHash: client.keyHash, excluding: excluding)
    }

    private func route(_ client: Client, excluding: Backend?) {
        releasePick(client)
        guard let chosen = choose(client, excluding: excluding) else {
            if case .respond(let status) = client.machine.noBackend() { respondWithError(client, status) }
            return
        }
        send(client, to: chosen)
    }

    /// Sends the client's request to `chosen`: on an idle pooled connection to it, or on a new one — once it has a
    /// slot of the backend under `maxRequestsPerBackend`.
    private func send(_ client: Client, to chosen: Balancer.Pick) {
        client.pick = chosen
        if let settings = client.queueSettings, !client.queue.holdsSlot, !admit(client, to: chosen, settings: settings) { return }
        if let pooled = takeIdle(for: chosen.backend, idempotent: client.machine.idempotent) {
            attach(client, pooled, reused: true)
        } else {
            openFresh(client, to: chosen.backend)
        }
    }

    private func releasePick(_ client: Client) {
        if let pick = client.pick {
            client.pick = nil
            client.queue.release(pick, limit: client.queueSettings?.limit)
            client.queueDeadline = 0
            client.runtime.balancer.release(pick)
        }
    }

    // MARK: The per-backend queue (`limits.maxRequestsPerBackend`)

    /// Takes a slot of `chosen`'s backend (true), or queues the exchange (its request is held meanwhile) or answers
    /// 503 when the queue is full (false).
    private func admit(_ client: Client, to chosen: Balancer.Pick, settings: BackendQueuePosition.Settings) -> Bool {
        let id = client.id
        let handle = chosen.handle
        let entry = client.queue.enter(chosen, settings: settings, metrics: client.runtime.metrics) {
            BackendAdmission.Ticket(execute: { [self] work in send(.run(work)) }) { [self] ticket, outcome in
                queueWaitEnded(ticket, outcome, client: id, handle: handle, limit: settings.limit)
            }
        }
        switch entry {
        case .admitted:
            return true
        case .queued:
            let span = Int64(settings.timeout * 1e9)
            client.queueDeadline = now + span
            client.queueDeadlineSlack = Self.slack(of: span)
            if client.queueDeadline + client.queueDeadlineSlack < earliestDeadline {
                earliestDeadline = client.queueDeadline + client.queueDeadlineSlack
            }
            // Its EOF may have come already: no new edge will say so.
            if client.inputClosed { abortQueuedOnClose(client) }
            return false
        case .queueFull:
            client.runtime.logger.debug("the queue of \(chosen.backend) is full (maxQueuePerBackend); answering 503")
            abortExchange(client, respondingWith: .serviceUnavailable)
            return false
        }
    }

    /// On the loop's thread: a wait ended. For a client that gave it up (closed, timed out) a granted slot goes back.
    private func queueWaitEnded(_ ticket: BackendAdmission.Ticket, _ outcome: BackendAdmission.Outcome, client id: UInt64,
                                handle: BackendHandle, limit: Int) {
        guard let client = clients[id] else {
            if outcome == .admitted { handle.admission.leave(limit: limit) }
            return
        }
        guard let outcome = client.queue.settle(ticket, outcome, handle: handle, limit: limit), let pick = client.pick else { return }
        client.queueDeadline = 0
        switch outcome {
        case .admitted:
            send(client, to: pick)
        case .redispatched:
            client.runtime.logger.debug("\(pick.backend) left or went down while a request waited for it; picking again")
            route(client, excluding: nil)
        }
        // As after a read of the client: what went to a pooled connection is flushed, and the body read on.
        resume(client)
    }

    private func queueWaitTimedOut(_ client: Client) {
        guard client.queue.isWaiting, let pick = client.pick, let settings = client.queueSettings else { return }
        client.runtime.metrics.queueTimeouts.increment()
        client.runtime.logger.debug("a request waited \(settings.timeout) s for \(pick.backend) (maxRequestsPerBackend); answering 503")
        abortExchange(client, respondingWith: .serviceUnavailable)
    }

    /// A waiting client sent EOF: with `abortQueuedOnClose` its request, which reached no backend, is dropped and the
    /// connection closed (HAProxy's `abortonclose`); otherwise it keeps its place and is answered. True if dropped.
    @discardableResult
    private func abortQueuedOnClose(_ client: Client) -> Bool {
        guard client.queue.isWaiting, client.queueSettings?.abortOnClose == true else { return false }
        client.runtime.metrics.queueAborts.increment()
        close(client, outcome: "client-closed")
        return true
    }

    /// Sends the request (held whole until its response begins) to the key's next candidate after `target` failed,
    /// or answers `status` when there is none.
    private func retry(_ client: Client, excluding target: Backend, after failure: String, otherwise status: HTTPResponseStatus) {
        releasePick(client)
        guard let next = choose(client, excluding: target) else {
            client.runtime.logger.debug("\(failure); no other backend for a retry")
            abortExchange(client, respondingWith: status, failedBackend: target)
            return
        }
        client.runtime.metrics.retries.increment()
        client.runtime.logger.debug("\(failure); retrying on the key's next node \(next.backend)")
        send(client, to: next)
    }

    private func attach(_ client: Client, _ upstream: Upstream, reused: Bool) {
        client.upstream = upstream
        client.upstreamWasReused = reused
        upstream.client = client
        upstream.state = .busy
        upstream.lastUsed = now
        upstream.responseKeepAlive = true
        client.machine.connected()
        upstream.framer.requestSent(isHEAD: client.requestIsHEAD, isHTTP10: client.requestVersion == .http1_0)
        client.pick?.counters.bytesToBackend.increment(by: Int64(client.request.readableBytes))
        upstream.output.append(client.request)
        if !client.machine.idempotent {
            // Sent: a non-idempotent request is never resent, so it is not kept.
            client.request = ByteBuffer()
        }
        if client.machine.requestComplete { armResponseTimeout(client) }
        // The caller goes on reading the client (the rest of the body) and flushes.
    }

    // MARK: The backend pool

    private func takeIdle(for backend: Backend, idempotent: Bool) -> Upstream? {
        guard let index = idle.index(forKey: backend.id) else { return nil }
        while let upstream = idle.values[index].popLast() {
            if !idempotent && now - upstream.lastUsed > Self.freshEnoughForUnsafeRequests {
                idle.values[index].insert(upstream, at: 0)
                return nil
            }
            if upstream.peerClosing || (!idempotent && Self.hasClosed(upstream.fd)) {
                discard(upstream)
                continue
            }
            return upstream
        }
        return nil
    }

    /// Whether the backend has closed its side already (its FIN not read yet): asked before a non-idempotent
    /// request goes on a pooled connection (``BackendHTTPHandler/backendHasClosed``).
    private static func hasClosed(_ fd: Int32) -> Bool {
        var info = tcp_info()
        var length = socklen_t(MemoryLayout<tcp_info>.size)
        guard getsockopt(fd, Int32(IPPROTO_TCP), TCP_INFO, &info, &length) == 0 else { return true }
        return info.tcpi_state != UInt8(TCP_ESTABLISHED)
    }

    /// Keeps a connection whose exchange completed cleanly, or closes it when the backend's pool is full.
    private func release(_ upstream: Upstream, limits: ProxyLimits) {
        upstream.client = nil
        guard upstream.responseKeepAlive, !upstream.peerClosing, upstream.inbound.readableBytes == 0, upstream.output.isEmpty,
              idle[upstream.backend.id, default: []].count < limits.maxIdleConnectionsPerBackend else {
            discard(upstream)
            return
        }
        upstream.state = .idle
        // An idle connection holds no read buffer (thousands of pooled connections would hold 16 KiB each).
        upstream.inbound = ByteBuffer()
        idle[upstream.backend.id, default: []].append(upstream)
    }

    /// Closes a backend connection (out of the pool if it was idle there).
    private func discard(_ upstream: Upstream) {
        guard upstreams.removeValue(forKey: upstream.id) != nil else { return }
        if upstream.state == .idle { idle[upstream.backend.id]?.removeAll { $0 === upstream } }
        upstream.client = nil
        upstream.output.removeAll()
        Glibc.close(upstream.fd)
    }

    private func openFresh(_ client: Client, to backend: Backend) {
        let address = backend.socketAddress
        let fd = EpollLoopCore.streamSocket(for: address)
        guard fd >= 0 else {
            connectFailed(client, nil, code: errno)
            return
        }
        var one: Int32 = 1
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        nextID += 1
        let upstream = Upstream(id: nextID, fd: fd, backend: backend, limits: client.runtime.configuration.limits)
        upstream.client = client
        upstream.connectDeadline = now + Int64(client.runtime.configuration.limits.connectTimeout * 1e9)
        upstreams[upstream.id] = upstream
        guard core.register(fd, events: EpollLoopCore.socketEvents, data: upstream.id << 1 | 1) else {
            connectFailed(client, upstream, code: errno)
            return
        }
        let result = address.withSockAddr { Glibc.connect(fd, $0, socklen_t($1)) }
        if result != 0 && errno != EINPROGRESS { connectFailed(client, upstream, code: errno) }
    }

    private func connectFailed(_ client: Client, _ upstream: Upstream?, code: Int32) {
        if let upstream { discard(upstream) }
        guard client.machine.state == .connecting, let target = client.pick?.backend else { return }
        let runtime = client.runtime
        let error = IOError(errnoCode: code, reason: "connect")
        if let local = LocalResourceFailure(error) {
            runtime.balancer.localResources.report(local, while: "connecting to \(target)", outcome: "answered 503, \(target) keeps its state")
            // With one descriptor free, accept works and the backend socket does not: every client in the backlog
            // would be accepted and answered 503 (a probe: 24 of 60, against SwiftNIO's 3). Accepting waits instead,
            // as on EMFILE at accept and in the TCP engine.
            core.pauseAccepting()
            abortExchange(client, respondingWith: .serviceUnavailable)
            return
        }
        runtime.balancer.recordConnectFailure(target)
        let reason = code == ETIMEDOUT ? "connect timed out" : String(cString: strerror(code))
        switch client.machine.connectFailed(timedOut: code == ETIMEDOUT, hasAlternative: runtime.balancer.backends.count > 1) {
        case .retry:
            retry(client, excluding: target, after: "connect to \(target) failed (\(reason))", otherwise: code == ETIMEDOUT ? .gatewayTimeout : .badGateway)
        case .respond(let status):
            runtime.logger.debug("connect to \(target) failed: \(reason)")
            abortExchange(client, respondingWith: status)
        case .close, .reconnect:
            close(client, outcome: "aborted")
        }
    }

    // MARK: Backend side

    private func upstreamEvent(_ upstream: Upstream, _ flags: UInt32) {
        if flags & (Self.epollIn | Self.epollRdHup | Self.epollHup | Self.epollErr) != 0 {
            upstream.readable = true
            if flags & (Self.epollRdHup | Self.epollHup | Self.epollErr) != 0 { upstream.peerClosing = true }
        }
        if flags & (Self.epollOut | Self.epollErr | Self.epollHup) != 0 { upstream.writable = true }
        let client = upstream.client
        switch upstream.state {
        case .connecting:
            guard flags & (Self.epollOut | Self.epollErr | Self.epollHup) != 0 else { return }
            connectFinished(upstream)
            // The backend may speak first, or have failed at once: its bytes came with this event.
            guard upstream.state == .busy, flushUpstream(upstream) else { break }
            readUpstream(upstream)
        case .idle:
            // Bytes or an EOF on an idle connection: it closed, or is out of sync. Either way it goes.
            if upstream.readable { discard(upstream) }
            return
        case .busy:
            guard flushUpstream(upstream) else { break }
            readUpstream(upstream)
        }
        if let client { resume(client) }
    }

    private func connectFinished(_ upstream: Upstream) {
        var code: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        if getsockopt(upstream.fd, SOL_SOCKET, SO_ERROR, &code, &length) != 0 { code = errno }
        guard let client = upstream.client else {
            discard(upstream)
            return
        }
        guard code == 0 else {
            connectFailed(client, upstream, code: code)
            return
        }
        guard client.machine.state == .connecting, let pick = client.pick, pick.backend == upstream.backend else {
            // The request is gone (its client left while the connect ran): the unused connection is pooled.
            release(upstream, limits: client.runtime.configuration.limits)
            return
        }
        client.runtime.balancer.recordConnectSuccess(upstream.backend)
        attach(client, upstream, reused: false)
    }

    /// After an event of a backend connection: the client it serves (or served) may read and write again.
    private func resume(_ client: Client) {
        guard clients[client.id] != nil else { return }
        readClient(client)
    }

    /// Writes what waits for the backend; false when the exchange ended (the connection failed).
    private func flushUpstream(_ upstream: Upstream) -> Bool {
        guard !upstream.output.isEmpty, upstream.writable else { return true }
        switch upstream.output.write(to: upstream.fd) {
        case .blocked:
            upstream.writable = false
            return true
        case .drained:
            return true
        case .failed:
            upstreamFailed(upstream)
            return false
        }
    }

    private func readUpstream(_ upstream: Upstream) {
        // Only while the client has taken everything before: a slow client holds the backend's reads (backpressure).
        while upstream.readable, let client = upstream.client, client.output.isEmpty {
            switch read(upstream.fd, into: &upstream.inbound, readable: &upstream.readable, peerClosing: upstream.peerClosing) {
            case .bytes:
                processResponse(upstream, client)
                guard clients[client.id] != nil, flushClient(client) else { return }
                // What was framed went to the client (or waits in its queue, and this loop stops).
                Self.reuseFromStart(&upstream.inbound)
                // The exchange may have ended (the connection pooled, or serving the client's next request).
                guard upstreams[upstream.id] != nil, upstream.client === client else { return }
            case .drained:
                return
            case .ended, .failed:
                upstreamFailed(upstream)
                return
            }
        }
    }

    private func processResponse(_ upstream: Upstream, _ client: Client) {
        do throws(HTTPResponseFramerError) {
            while let part = try upstream.framer.next(&upstream.inbound) {
                switch part {
                case .head(let head):
                    upstream.responseKeepAlive = head.keepAlive
                    responseBegan(client, head)
                    let out = ClientResponseHead.bytes(head, machine: client.machine, pick: client.pick, requestVersion: client.requestVersion,
                                                       runtime: client.runtime, allocator: allocator)
                    client.access?.bytesOut += out.readableBytes
                    write(out, to: client)
                    if client.machine.requestComplete { armResponseTimeout(client) }
                case .headAndBody(let head, let bytes):
                    upstream.responseKeepAlive = head.keepAlive
                    responseBegan(client, head)
                    let headLength = head.bytes.readableBytes
                    client.pick?.counters.bytesFromBackend.increment(by: Int64(bytes.readableBytes - headLength))
                    if ClientResponseHead.goesUnchanged(head, machine: client.machine, pick: client.pick, requestVersion: client.requestVersion, runtime: client.runtime) {
                        client.access?.bytesOut += bytes.readableBytes
                        write(bytes, to: client)
                    } else {
                        let out = ClientResponseHead.bytes(head, machine: client.machine, pick: client.pick, requestVersion: client.requestVersion,
                                                           runtime: client.runtime, allocator: allocator)
                        client.access?.bytesOut += out.readableBytes + bytes.readableBytes - headLength
                        write(out, to: client)
                        write(bytes.getSlice(at: bytes.readerIndex + headLength, length: bytes.readableBytes - headLength)!, to: client)
                    }
                    if client.machine.requestComplete { armResponseTimeout(client) }
                case .body(let bytes):
                    client.access?.bytesOut += bytes.readableBytes
                    client.pick?.counters.bytesFromBackend.increment(by: Int64(bytes.readableBytes))
                    write(bytes, to: client)
                case .end:
                    if upstream.inbound.readableBytes > 0 { upstream.responseKeepAlive = false }
                    finishExchange(client, upstream)
                    return
                case .switched, .interim:
                    // No request that may switch protocols comes here (handed over), and interim heads are dropped.
                    throw HTTPResponseFramerError.unexpectedBytes
                }
            }
        } catch {
            malformedResponse(client, upstream, error)
        }
    }

    /// The backend's response broke HTTP's framing: its connection closes, and the client gets a 502 if it has seen
    /// nothing of the response, otherwise what was written and a close. Not retried, and not a health failure.
    private func malformedResponse(_ client: Client, _ upstream: Upstream, _ error: HTTPResponseFramerError) {
        client.runtime.logger.warning("backend \(upstream.backend) sent a malformed response: \(error)")
        client.upstream = nil
        discard(upstream)
        switch client.machine.backendResponseMalformed() {
        case .respond(let status): abortExchange(client, respondingWith: status)
        default:
            client.access.finish(to: client.runtime.accessLog, outcome: "aborted", backend: upstream.backend)
            closeAfterWrites(client)
        }
    }

    /// The response's head arrived; once it is written (and the request is complete) the deadline is the
    /// response's progress (``armResponseTimeout(_:)``).
    private func responseBegan(_ client: Client, _ head: BackendResponseHead) {
        client.deadline = 0
        client.access?.status = head.status
        client.machine.responseHeadReceived(closeDelimited: head.framing == .untilClose)
        if client.machine.idempotent {
            // Kept for a retry until now; a large body's buffer is not kept for the connection's next requests.
            if client.request.capacity > Self.maxPipelinedBytes { client.request = ByteBuffer() } else { client.request.clear() }
        }
    }

    private func finishExchange(_ client: Client, _ upstream: Upstream) {
        let runtime = client.runtime
        let decision = client.machine.responseEnded(backendKeepAlive: upstream.responseKeepAlive)
        client.access.finish(to: runtime.accessLog, outcome: "done", backend: upstream.backend)
        client.upstream = nil
        releasePick(client)
        switch decision {
        case .keepAlive(let reuse), .close(let reuse):
            if reuse {
                upstream.responseKeepAlive = true
                release(upstream, limits: runtime.configuration.limits)
            } else {
                discard(upstream)
            }
        }
        client.keyHash = nil
        client.stickyToken = nil
        switch decision {
        case .keepAlive:
            if let status = client.malformedNext {
                respondWithError(client, status)
                return
            }
            startIdleTimer(client)
            if let stopGrace, client.machine.stopping { client.stopDeadline = now + stopGrace }
            if client.inbound.readableBytes > 0 {
                processClient(client)
            } else {
                // A keep-alive connection waiting for its next request holds no read buffer (nginx frees its header
                // buffer too): 10,000 idle clients would hold 160 MB.
                client.inbound = ByteBuffer()
            }
            guard clients[client.id] != nil else { return }
            if client.inputClosed && client.machine.state == .idle { closeAfterWrites(client) }
        case .close:
            closeAfterWrites(client)
        }
    }

    /// The backend connection closed or failed before the response ended.
    private func upstreamFailed(_ upstream: Upstream) {
        guard let client = upstream.client else {
            discard(upstream)
            return
        }
        if let end = upstream.framer.inputClosed() {
            // The close ends a body without length: the response is complete.
            upstream.responseKeepAlive = false
            if case .end = end { finishExchange(client, upstream) }
            return
        }
        if upstream.inbound.readableBytes > 0 {
            // It answered something, then closed: a malformed answer (``BackendHTTPHandler``'s rule).
            malformedResponse(client, upstream, .truncatedHead)
            return
        }
        client.upstream = nil
        discard(upstream)
        let runtime = client.runtime
        let target = upstream.backend
        let failure = "backend \(target) closed before responding"
        if !client.upstreamWasReused && !client.machine.responseStarted {
            runtime.balancer.recordConnectFailure(target, reason: "a new connection closed before any response (passive check)")
        }
        switch client.machine.backendFailed(reusedConnection: client.upstreamWasReused, hasAlternative: runtime.balancer.backends.count > 1) {
        case .reconnect:
            runtime.metrics.retries.increment()
            runtime.logger.debug("\(failure); sending it again on a fresh connection to the same backend")
            openFresh(client, to: target)
        case .retry:
            retry(client, excluding: target, after: failure, otherwise: .badGateway)
        case .respond(let status):
            runtime.logger.debug("\(failure)")
            abortExchange(client, respondingWith: status)
        case .close:
            client.access.finish(to: runtime.accessLog, outcome: "aborted", backend: target)
            closeAfterWrites(client)
        }
    }

    // MARK: Endings

    private func abortExchange(_ client: Client, respondingWith status: HTTPResponseStatus, failedBackend: Backend? = nil) {
        if let upstream = client.upstream {
            client.upstream = nil
            discard(upstream)
        }
        let failed = failedBackend ?? client.pick?.backend
        releasePick(client)
        respondWithError(client, status, backend: failed)
    }

    /// Writes a proxy-made response and closes the connection once it is written.
    private func respondWithError(_ client: Client, _ status: HTTPResponseStatus, backend: Backend? = nil) {
        client.machine.close()
        client.deadline = 0
        let runtime = client.runtime
        if runtime.accessLog != nil {
            if client.access == nil { client.access = .unreadRequest(client: client.identity.forwarding.client) }
            client.access.finish(to: runtime.accessLog, outcome: "proxy-answer", status: Int(status.code), backend: backend)
        }
        runtime.metrics.proxyResponse(status: Int(status.code))
        write(ProxyResponse.bytes(status, version: client.requestVersion, adding: runtime.responseFields, allocator: allocator), to: client)
        closeAfterWrites(client)
    }

    private func closeAfterWrites(_ client: Client) {
        client.machine.close()
        client.closeWhenWritten = true
        if client.output.isEmpty {
            close(client, outcome: "closed")
        } else {
            _ = flushClient(client)
        }
    }

    private func close(_ client: Client, outcome: StaticString) {
        guard clients.removeValue(forKey: client.id) != nil else { return }
        client.access.finish(to: client.runtime.accessLog, outcome: outcome)
        client.machine.close()
        if let upstream = client.upstream {
            // Mid-exchange: the backend connection is out of sync; never pooled.
            client.upstream = nil
            discard(upstream)
        }
        releasePick(client)
        client.output.removeAll()
        Glibc.close(client.fd)
        client.runtime.metrics.activeConnections.decrement()
        admission.leave()
    }

    // MARK: epoll flags

    private static let epollIn = EpollLoopCore.epollIn
    private static let epollOut = EpollLoopCore.epollOut
    private static let epollErr = EpollLoopCore.epollErr
    private static let epollHup = EpollLoopCore.epollHup
    private static let epollRdHup = EpollLoopCore.epollRdHup
}
