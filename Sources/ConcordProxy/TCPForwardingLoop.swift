import CConcordSystem
import ConcordNetworking
import CoreMetrics
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// One thread of ``TCPForwardingEngine``: its own epoll set, edge-triggered, over its listener and the connection
/// pairs it accepted. A pair is a slot in a plain array (the epoll data carries slot, generation and side, so an
/// event for a closed and reused slot is ignored) with one buffer per direction, allocated once per slot: a read
/// fills a direction's buffer, a write empties it into the other socket, and a direction reads nothing more until
/// its buffer is written (bounded memory, the backpressure). A short read means the socket is drained unless the
/// peer's EOF is pending (nginx's rule: one `read` and one `send` per chunk, no read that ends in `EAGAIN`).
/// An EOF is passed on as `shutdown(SHUT_WR)` once the buffer is written; the pair closes when both directions
/// are done, on an error, or when nothing moved for `tcpIdleTimeout`. A pair whose backend is done while its client
/// may still send closes the client's side with a ``LingeringClose``.
///
/// Everything below runs on the loop's own thread, except ``send(_:)``, which queues a command under a lock and
/// wakes the loop through an eventfd.
final class TCPForwardingLoop: ForwardingLoop, EpollLoopHandler, @unchecked Sendable {
    // @unchecked: the mutable state (pairs, buffers) is touched only by the loop's thread in `run()`; other threads
    // reach the loop only through its core's commands (locked) and eventfd.

    typealias Command = EpollLoopCore.Command

    private enum PairState {
        case free
        /// `acceptProxyProtocol`: the client's PROXY protocol header is being read (no backend yet); the bytes
        /// after it stay in the client direction's buffer until the backend is connected.
        case awaitingHeader
        /// `limits.maxRequestsPerBackend`: waiting in the picked backend's queue (``BackendAdmission``) for a slot.
        case queued
        case connecting, forwarding
        /// The backend socket is closed and the answer written: the client's bytes are dropped until its EOF
        /// (``LingeringClose``), so that closing does not reset the connection before the answer is read.
        case lingering
    }

    /// One direction of a pair: bytes read from `from` wait in `buffer[start..<end]` to be sent to `to`.
    private struct Direction {
        var from: Int32 = -1
        var to: Int32 = -1
        var buffer: UnsafeMutableRawPointer?
        var start = 0
        var end = 0
        /// `from` may have bytes (an edge was seen and no short read or EAGAIN since).
        var readable = false
        /// `from`'s peer sent its FIN (EPOLLRDHUP): read on until the 0.
        var peerClosing = false
        /// `from` returned 0.
        var eof = false
        /// `to` may take bytes.
        var writable = false
        /// `shutdown(to, SHUT_WR)` done.
        var shut = false
        /// `from` failed (a reset): what was read before it is passed on, then the pair closes.
        var failed = false
        /// `from` returned 0 or failed: its peer sends nothing more.
        var readEnded = false
        /// A send to `to` failed: its peer is gone.
        var sendFailed = false
        /// Bytes read and not yet added to the backend's byte counter (added every second and at the end).
        var unreported = 0
        /// Bytes read in all, for the access log.
        var total = 0

        mutating func reset(from: Int32, to: Int32) {
            self.from = from
            self.to = to
            start = 0; end = 0
            readable = false; peerClosing = false; eof = false; writable = false; shut = false; failed = false
            readEnded = false; sendFailed = false
            unreported = 0; total = 0
        }
    }

    private struct Pair {
        var state = PairState.free
        var generation: UInt32 = 0
        /// Client → backend.
        var up = Direction()
        /// Backend → client.
        var down = Direction()
        var runtime: ProxyRuntime?
        var pick: Balancer.Pick?
        var keyHash: UInt64?
        /// The client: the peer, or the source a received PROXY protocol header named.
        var client: SocketAddress?
        /// The destination a received PROXY protocol header named (for the header towards the backend).
        var proxiedDestination: SocketAddress?
        var attempt = 1
        /// While awaiting a PROXY protocol header or connecting: when that times out; while lingering, when it ends
        /// at the latest (coarse monotonic nanoseconds).
        var deadline: Int64 = 0
        var lastActivity: Int64 = 0
        /// `tcpIdleTimeout` of the settings the pair was accepted with, in nanoseconds; while lingering, their
        /// `lingeringTimeout`.
        var idleTimeout: Int64 = 0
        var access: AccessLogEntry?
        /// On ``ready``: it used its turn's budget with bytes still to move.
        var isReady = false
        /// Under `limits.maxRequestsPerBackend` (as when the pair was accepted): its wait in the backend's queue, or
        /// the slot it holds until it closes (its timeout is the sweep's, not the position's).
        var queueSettings: BackendQueuePosition.Settings?
        var queue = BackendQueuePosition()
    }

    static let bufferSize = 16 * 1024
    /// Free slots that keep their buffers, so a steady churn of connections allocates none; the buffers of other free
    /// slots are released every second (a peak of 2,000 pairs used to keep its ≈ 64 MB for good).
    static let spareBuffers = 64
    /// Reads per direction per turn (128 KiB): a pair that has more goes on ``ready`` and waits for the next turn,
    /// so one busy pair cannot hold up the others on its loop, nor accepting, timeouts and commands (a probe saw
    /// one pump make 3,362 reads in 977 ms, and 1.8-s waits for other pairs, before this budget).
    static let readsPerTurn = 8
    private static let reportInterval: Int64 = 1_000_000_000

    private let core: EpollLoopCore
    private let runtimes: NIOLockedValueBox<ProxyRuntime>
    private let admission: TCPForwardingEngine.Admission
    /// Bytes of pair buffers allocated, across the engine's loops (and in `/metrics`).
    final class BufferAccount: Sendable {
        private let total = NIOLockedValueBox(0)
        private let meter: CoreMetrics.Meter

        init(meter: CoreMetrics.Meter) { self.meter = meter }

        /// `pairs` pairs' buffers allocated (negative: released).
        func add(pairs: Int) {
            let bytes = pairs * 2 * TCPForwardingLoop.bufferSize
            total.withLockedValue { $0 += bytes }
            meter.increment(by: Double(bytes))
        }

        var bytes: Int { total.withLockedValue { $0 } }
    }

    private let bufferBytes: BufferAccount
    private let logger: Logger
    private let cpu: Int?

    private var pairs: UnsafeMutablePointer<Pair>
    private var capacity = 0
    private var freeSlots: [Int32] = []
    private var live = 0
    private var now: Int64 { core.now }
    private var nextReport: Int64 = 0
    /// A pair closed with more than ``spareBuffers`` slots free: the sweep may have buffers to release (the loop
    /// does not sleep for good until it has looked).
    private var buffersToRelease = false
    /// Pairs (their epoll tags) with bytes still to move after their turn: served after the next `epoll_wait`, which
    /// does not block while there are any.
    private var ready: [UInt64] = []
    /// The list being served (swapped with ``ready``, so neither is copied).
    private var serving: [UInt64] = []

    /// `listener`: a non-blocking listening socket this loop accepts from (others may share it: `exclusive`).
    init(listener: Int32, exclusive: Bool, runtimes: NIOLockedValueBox<ProxyRuntime>, admission: TCPForwardingEngine.Admission,
         bufferBytes: BufferAccount, logger: Logger, cpu: Int?) throws(ProxyError) {
        core = try EpollLoopCore(listener: listener, exclusive: exclusive, runtimes: runtimes, logger: logger, role: "TCP forwarding loop")
        self.runtimes = runtimes
        self.admission = admission
        self.bufferBytes = bufferBytes
        self.logger = logger
        self.cpu = cpu
        pairs = .allocate(capacity: 0)
    }

    deinit {
        var released = 0
        for slot in 0..<capacity where releaseBuffers(slot) { released += 1 }
        bufferBytes.add(pairs: -released)
        pairs.deinitialize(count: capacity)
        pairs.deallocate()
    }

    func send(_ command: Command) { core.send(command) }

    // MARK: The loop

    func run() {
        nextReport = c_concord_coarse_now() + Self.reportInterval
        core.run(self, cpu: cpu)
    }

    var waitTimeout: Int32 {
        !ready.isEmpty ? 0 : live > 0 || buffersToRelease ? EpollLoopCore.sweepMilliseconds : -1
    }

    func afterEvents() {
        if !ready.isEmpty { serveReady() }
    }

    private func serveReady() {
        swap(&ready, &serving)
        defer { serving.removeAll(keepingCapacity: true) }
        for tag in serving {
            guard let slot = currentSlot(tag) else { continue }
            pairs[slot].isReady = false
            switch pairs[slot].state {
            case .forwarding: pump(slot)
            case .lingering: dropClientBytes(slot)
            case .free, .awaitingHeader, .queued, .connecting: break
            }
        }
    }

    func closeAll() -> Int {
        var closed = 0
        for slot in 0..<capacity where pairs[slot].state != .free {
            closePair(slot, outcome: "closed")
            closed += 1
        }
        return closed
    }

    /// Every 100 ms: connects that ran out of time, idle pairs, the byte counters (every second).
    func sweep() {
        let report = now >= nextReport
        if report { nextReport = now + Self.reportInterval }
        for slot in 0..<capacity {
            switch pairs[slot].state {
            case .free:
                continue
            case .awaitingHeader:
                if now >= pairs[slot].deadline { rejectHeader(slot, "no PROXY protocol header within the header read timeout") }
            case .queued:
                if now >= pairs[slot].deadline { queueWaitTimedOut(slot) }
            case .connecting:
                if now >= pairs[slot].deadline { connectFailed(slot, errnoCode: ETIMEDOUT) }
            case .forwarding:
                if now - pairs[slot].lastActivity >= pairs[slot].idleTimeout {
                    closePair(slot, outcome: "closed")
                } else if report {
                    reportBytes(slot)
                }
            case .lingering:
                if now >= pairs[slot].deadline || now - pairs[slot].lastActivity >= pairs[slot].idleTimeout {
                    closePair(slot, outcome: "closed")
                }
            }
        }
        if report { releaseSpareBuffers() }
    }

    /// Releases the buffers of free slots other than the ``spareBuffers`` freed last (the next to be reused:
    /// `freeSlots` is a stack).
    private func releaseSpareBuffers() {
        buffersToRelease = false
        var released = 0
        for index in 0..<max(0, freeSlots.count - Self.spareBuffers) where releaseBuffers(Int(freeSlots[index])) {
            released += 1
        }
        guard released > 0 else { return }
        bufferBytes.add(pairs: -released)
        // Freed 32-KiB blocks stay in malloc's arena, counted in the process's memory, until trimmed (a probe: RSS
        // 97 MB after a 2,000-connection peak, before and after the buffers were freed; 38 MB trimmed).
        _ = c_concord_malloc_trim()
    }

    // MARK: Accepting

    func accepted(_ fd: Int32, peer: SocketAddress?) {
        let runtime = runtimes.withLockedValue { $0 }
        guard admission.admit(limit: runtime.configuration.limits.maxConnections) else {
            Glibc.close(fd)
            return
        }
        runtime.metrics.activeConnections.increment()
        if freeSlots.isEmpty { grow() }
        let slot = Int(freeSlots.removeLast())
        live += 1
        pairs[slot].runtime = runtime
        pairs[slot].client = peer
        pairs[slot].queueSettings = BackendQueuePosition.Settings(runtime.configuration.limits)
        pairs[slot].up.reset(from: fd, to: -1)
        pairs[slot].down.reset(from: -1, to: fd)
        pairs[slot].lastActivity = now
        pairs[slot].idleTimeout = Int64(runtime.configuration.limits.tcpIdleTimeout * 1e9)
        guard c_concord_epoll_control(core.epoll, fd, 0, Self.pairEvents, tag(slot, backend: false)) == 0 else {
            pairs[slot].state = .connecting
            closePair(slot, outcome: "client-closed")
            return
        }
        if runtime.configuration.acceptProxyProtocol {
            // The header comes first; epoll reports the bytes already there (the socket was added edge-triggered).
            pairs[slot].state = .awaitingHeader
            pairs[slot].deadline = now + Int64(runtime.configuration.limits.headerReadTimeout * 1e9)
            allocateBuffers(slot)
            return
        }
        pairs[slot].state = .connecting
        begin(slot, client: peer)
    }

    /// The client is known (the peer, or what its PROXY protocol header named): picks its backend and connects.
    private func begin(_ slot: Int, client: SocketAddress?) {
        guard let runtime = pairs[slot].runtime else { return }
        pairs[slot].client = client
        let address = ClientAddress(client)
        pairs[slot].keyHash = address.map { runtime.extractor.ipHash($0) }
        if runtime.accessLog != nil { pairs[slot].access = AccessLogEntry(client: address?.description ?? "unknown") }
        connect(slot, excluding: nil, attempt: 1)
    }

    // MARK: Receiving a PROXY protocol header (`acceptProxyProtocol`)

    /// Bytes of a client's first reads kept while its header is parsed: room is left in the buffer for the header
    /// towards the backend (`proxyProtocol`, at most 232 bytes), which goes in front of them.
    private static let headerReadLimit = bufferSize - 512

    /// Reads the client's first bytes until they hold a whole PROXY protocol header (v1 or v2), then connects with
    /// the client it names; the bytes after it wait in the buffer. A connection whose first bytes are not a valid
    /// header is closed (``TCPForwardingLoop/rejectHeader(_:_:)``), as on the NIO path (``ProxyProtocolReceiver``).
    private func readHeader(_ slot: Int) {
        while pairs[slot].up.readable {
            let end = pairs[slot].up.end
            let count = Glibc.read(pairs[slot].up.from, pairs[slot].up.buffer! + end, Self.headerReadLimit - end)
            if count == 0 {
                // A load balancer's TCP health check: closed at once, not at the header timeout.
                closePair(slot, outcome: "client-closed")
                return
            }
            if count < 0 {
                let code = errno
                if code == EINTR { continue }
                if code == EAGAIN || code == EWOULDBLOCK {
                    pairs[slot].up.readable = false
                    return
                }
                closePair(slot, outcome: "client-closed")
                return
            }
            pairs[slot].up.end = end + count
            pairs[slot].up.total &+= count
            if end + count < Self.headerReadLimit && !pairs[slot].up.peerClosing { pairs[slot].up.readable = false }
            let received = ByteBuffer(bytes: UnsafeRawBufferPointer(start: pairs[slot].up.buffer!, count: end + count))
            switch ProxyProtocolHeader.parse(received) {
            case .incomplete:
                break  // fewer than `maximumReceivedLength` bytes so far: the parser refuses longer headers itself
            case .invalid(let reason):
                rejectHeader(slot, reason)
                return
            case .header(let length, let source, let destination):
                let rest = end + count - length
                if rest > 0 { pairs[slot].up.buffer!.copyMemory(from: pairs[slot].up.buffer! + length, byteCount: rest) }
                // The header is not the client's data: neither the byte counter nor the access log counts it.
                pairs[slot].up.end = rest
                pairs[slot].up.total = rest
                pairs[slot].up.unreported = rest
                pairs[slot].proxiedDestination = destination
                pairs[slot].state = .connecting
                // `UNKNOWN` or v2 `LOCAL` (the balancer's own health check): the connection's own peer.
                begin(slot, client: source ?? pairs[slot].client)
                return
            }
        }
    }

    private func rejectHeader(_ slot: Int, _ reason: String) {
        if let runtime = pairs[slot].runtime {
            runtime.metrics.proxyProtocolRejected.increment()
            runtime.logger.debug("PROXY protocol: \(reason) from \(pairs[slot].client?.description ?? "a client"); closing")
        }
        closePair(slot, outcome: "client-closed")
    }

    // MARK: Connecting

    private func connect(_ slot: Int, excluding: Backend?, attempt: Int) {
        guard let runtime = pairs[slot].runtime,
              let chosen = runtime.balancer.pickConnection(balance: runtime.configuration.balance, keyHash: pairs[slot].keyHash,
                                                           excluding: excluding) else {
            pairs[slot].runtime?.logger.debug("L4: no backend available; closing the client connection")
            closePair(slot, outcome: "no-backend")
            return
        }
        pairs[slot].pick = chosen
        pairs[slot].attempt = attempt
        if let settings = pairs[slot].queueSettings, !pairs[slot].queue.holdsSlot, !admit(slot, to: chosen, settings: settings) { return }
        open(slot)
    }

    /// Connects the pair to its picked backend.
    private func open(_ slot: Int) {
        guard let runtime = pairs[slot].runtime, let chosen = pairs[slot].pick else { return }
        let address = chosen.backend.socketAddress
        let fd = EpollLoopCore.streamSocket(for: address)
        guard fd >= 0 else {
            connectFailed(slot, errnoCode: errno)
            return
        }
        if address.protocolFamily != AF_UNIX {
            var one: Int32 = 1
            _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        }
        pairs[slot].up.to = fd
        pairs[slot].down.from = fd
        pairs[slot].deadline = now + Int64(runtime.configuration.limits.connectTimeout * 1e9)
        guard c_concord_epoll_control(core.epoll, fd, 0, Self.pairEvents, tag(slot, backend: true)) == 0 else {
            connectFailed(slot, errnoCode: errno)
            return
        }
        let result = address.withSockAddr { Glibc.connect(fd, $0, socklen_t($1)) }
        if result != 0 && errno != EINPROGRESS {
            connectFailed(slot, errnoCode: errno)
        }
        // Otherwise EPOLLOUT (or an error) on the backend socket says how it went.
    }

    // MARK: The per-backend queue (`limits.maxRequestsPerBackend`)

    /// Takes a slot of `chosen`'s backend (true), or queues the pair (its client's bytes wait in the kernel) or closes
    /// it when the queue is full (false).
    private func admit(_ slot: Int, to chosen: Balancer.Pick, settings: BackendQueuePosition.Settings) -> Bool {
        guard let runtime = pairs[slot].runtime else { return false }
        let tag = tag(slot, backend: false)
        let handle = chosen.handle
        let entry = pairs[slot].queue.enter(chosen, settings: settings, metrics: runtime.metrics) {
            BackendAdmission.Ticket(execute: { [self] work in send(.run(work)) }) { [self] ticket, outcome in
                queueWaitEnded(ticket, outcome, tag: tag, handle: handle, limit: settings.limit)
            }
        }
        switch entry {
        case .admitted:
            return true
        case .queued:
            pairs[slot].state = .queued
            pairs[slot].deadline = now + Int64(settings.timeout * 1e9)
            // Its EOF may have come already (with a PROXY protocol header, or during a first connect): no new edge
            // will say so.
            if pairs[slot].up.peerClosing { abortQueuedOnClose(slot) }
            return false
        case .queueFull:
            runtime.logger.debug("L4: the queue of \(chosen.backend) is full (maxQueuePerBackend); closing the connection")
            pairs[slot].access?.backend = chosen.backend.id
            closePair(slot, outcome: "queue-full")
            return false
        }
    }

    /// On the loop's thread: a wait ended. For a pair that gave it up (closed, timed out) a granted slot goes back.
    private func queueWaitEnded(_ ticket: BackendAdmission.Ticket, _ outcome: BackendAdmission.Outcome, tag: UInt64,
                                handle: BackendHandle, limit: Int) {
        guard let slot = currentSlot(tag) else {
            if outcome == .admitted { handle.admission.leave(limit: limit) }
            return
        }
        guard let outcome = pairs[slot].queue.settle(ticket, outcome, handle: handle, limit: limit) else { return }
        pairs[slot].state = .connecting
        switch outcome {
        case .admitted:
            open(slot)
        case .redispatched:
            // The backend went down or left: pick again.
            if let pick = pairs[slot].pick {
                pairs[slot].pick = nil
                pairs[slot].runtime?.balancer.release(pick)
            }
            connect(slot, excluding: nil, attempt: pairs[slot].attempt)
        }
    }

    /// A waiting client sent EOF: with `abortQueuedOnClose` it leaves the queue and is closed (HAProxy's
    /// `abortonclose`); otherwise it keeps its place and is answered.
    private func abortQueuedOnClose(_ slot: Int) {
        guard pairs[slot].state == .queued, pairs[slot].queueSettings?.abortOnClose == true else { return }
        pairs[slot].runtime?.metrics.queueAborts.increment()
        pairs[slot].access?.backend = pairs[slot].pick?.backend.id
        closePair(slot, outcome: "client-closed")
    }

    private func queueWaitTimedOut(_ slot: Int) {
        guard let runtime = pairs[slot].runtime, let pick = pairs[slot].pick else { return }
        runtime.metrics.queueTimeouts.increment()
        runtime.logger.debug("L4: a connection waited \(pairs[slot].queueSettings?.timeout ?? 0) s for \(pick.backend) (maxRequestsPerBackend); closing it")
        pairs[slot].access?.backend = pick.backend.id
        closePair(slot, outcome: "queue-timeout")
    }

    /// Leaves the queue if waiting (a slot granted meanwhile goes back through ``queueWaitEnded``), and gives a held
    /// slot back. Before the pick is released: a wait is withdrawn from the picked backend's queue.
    private func releaseQueuePosition(_ slot: Int) {
        if let pick = pairs[slot].pick { pairs[slot].queue.release(pick, limit: pairs[slot].queueSettings?.limit) }
    }

    /// `flags`: the event that said so (a backend that closed at once — a Unix socket's — shows HUP in it, and no
    /// later edge will).
    private func connectFinished(_ slot: Int, flags: UInt32) {
        var code: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        if getsockopt(pairs[slot].up.to, SOL_SOCKET, SO_ERROR, &code, &length) != 0 { code = errno }
        guard code == 0 else {
            connectFailed(slot, errnoCode: code)
            return
        }
        guard let runtime = pairs[slot].runtime, let pick = pairs[slot].pick else { return }
        runtime.balancer.recordConnectSuccess(pick.backend)
        pairs[slot].state = .forwarding
        pairs[slot].up.writable = true
        pairs[slot].lastActivity = now
        allocateBuffers(slot)
        if let version = runtime.configuration.proxyProtocol {
            var header = ByteBuffer()
            ProxyProtocolHeader.encode(version, source: pairs[slot].client,
                                       destination: pairs[slot].proxiedDestination ?? EpollLoopCore.localAddress(of: pairs[slot].up.from), into: &header)
            // In front of the bytes that came after a received header (``headerReadLimit`` leaves room for it).
            let waiting = pairs[slot].up.end
            let count = min(header.readableBytes, Self.bufferSize - waiting)
            let buffer = pairs[slot].up.buffer!
            if waiting > 0 { (buffer + count).copyMemory(from: buffer, byteCount: waiting) }
            header.withUnsafeReadableBytes { bytes in
                buffer.copyMemory(from: bytes.baseAddress!, byteCount: count)
            }
            pairs[slot].up.end = waiting + count
        }
        pairs[slot].access?.backend = pick.backend.id
        noteBackendGone(slot, flags)
        pump(slot)
    }

    /// Frees the slot's buffers; false when it had none. (The caller accounts for them.)
    private func releaseBuffers(_ slot: Int) -> Bool {
        guard let buffers = pairs[slot].up.buffer else { return false }
        buffers.deallocate()
        pairs[slot].up.buffer = nil
        pairs[slot].down.buffer = nil
        return true
    }

    private func allocateBuffers(_ slot: Int) {
        guard pairs[slot].up.buffer == nil else { return }
        let buffers = UnsafeMutableRawPointer.allocate(byteCount: 2 * Self.bufferSize, alignment: 64)
        pairs[slot].up.buffer = buffers
        pairs[slot].down.buffer = buffers + Self.bufferSize
        bufferBytes.add(pairs: 1)
    }

    private func connectFailed(_ slot: Int, errnoCode code: Int32) {
        guard let runtime = pairs[slot].runtime, let pick = pairs[slot].pick else {
            closePair(slot, outcome: "connect-failed")
            return
        }
        let backendSocket = pairs[slot].up.to
        if backendSocket >= 0 { Glibc.close(backendSocket) }
        pairs[slot].up.to = -1
        pairs[slot].down.from = -1
        pairs[slot].up.writable = false
        // What the failed socket's events said (its HUP looks like a closing peer) does not carry over.
        pairs[slot].down.readable = false
        pairs[slot].down.peerClosing = false
        releaseQueuePosition(slot)
        pairs[slot].pick = nil
        runtime.balancer.release(pick)
        let target = pick.backend
        let reason = code == ETIMEDOUT ? "connect timed out" : String(cString: strerror(code))
        if let local = LocalResourceFailure(IOError(errnoCode: code, reason: "connect")) {
            runtime.balancer.localResources.report(local, while: "L4: connecting to \(target)", outcome: "client connection closed, \(target) keeps its state")
            // With one descriptor free, accept works and the backend socket does not: every client in the backlog
            // would be accepted and closed at once. Accepting waits instead, as on EMFILE at accept.
            core.pauseAccepting()
            pairs[slot].access?.backend = target.id
            closePair(slot, outcome: "connect-failed")
            return
        }
        runtime.balancer.recordConnectFailure(target)
        let attempt = pairs[slot].attempt
        if attempt < 2 {
            runtime.metrics.retries.increment()
            runtime.logger.debug("L4: connect to \(target) failed (\(reason)); trying the next node")
            connect(slot, excluding: target, attempt: attempt + 1)
        } else {
            runtime.logger.debug("L4: connect to \(target) failed: \(reason)")
            pairs[slot].access?.backend = target.id
            closePair(slot, outcome: "connect-failed")
        }
    }

    // MARK: Forwarding

    /// A pair's epoll data (and ``ready`` entry): its slot's generation, the slot, and which socket.
    private func tag(_ slot: Int, backend: Bool) -> UInt64 {
        UInt64(pairs[slot].generation) << 32 | UInt64(slot) << 1 | (backend ? 1 : 0)
    }

    /// The slot `tag` names, if the pair it was made for is still there (not closed, its slot not reused).
    private func currentSlot(_ tag: UInt64) -> Int? {
        let slot = Int(truncatingIfNeeded: (tag >> 1) & 0x7FFF_FFFF)
        guard slot < capacity, pairs[slot].state != .free, pairs[slot].generation == UInt32(truncatingIfNeeded: tag >> 32) else { return nil }
        return slot
    }

    func handle(_ data: UInt64, _ flags: UInt32) {
        guard let slot = currentSlot(data) else { return }
        let isBackend = data & 1 == 1
        if pairs[slot].state == .lingering {
            // Only the client socket is left (an event of the closed backend socket may still be in this batch).
            guard !isBackend else { return }
            noteReadable(&pairs[slot].up, flags | (flags & Self.epollErr != 0 ? Self.epollRdHup : 0))
            dropClientBytes(slot)
            return
        }
        if pairs[slot].state != .forwarding {
            // Before forwarding (reading a PROXY header, queued, connecting): the client's bytes and EOF wait in the
            // kernel until the backend is connected.
            if isBackend {
                // Only a connecting pair has a backend socket.
                guard pairs[slot].state == .connecting else { return }
                // The backend may speak first: its bytes can come in the event that says the connect finished.
                noteReadable(&pairs[slot].down, flags)
                if flags & (Self.epollOut | Self.epollErr | Self.epollHup) != 0 { connectFinished(slot, flags: flags) }
                return
            }
            if flags & Self.epollErr != 0 {
                closePair(slot, outcome: "client-closed")
                return
            }
            noteReadable(&pairs[slot].up, flags)
            // Edge-triggered: this may be the only event that says the client can take bytes.
            if flags & Self.epollOut != 0 { pairs[slot].down.writable = true }
            switch pairs[slot].state {
            case .awaitingHeader: readHeader(slot)
            case .queued where flags & (Self.epollRdHup | Self.epollHup) != 0: abortQueuedOnClose(slot)
            default: break
            }
            return
        }
        // An error (a reset) is read like an EOF: the bytes the peer sent before it are still queued and are passed
        // on, then the read reports the error (closing at once dropped them, and the other side saw a clean end).
        let flags = flags & Self.epollErr != 0 ? flags | Self.epollRdHup | Self.epollOut : flags
        if isBackend {
            noteReadable(&pairs[slot].down, flags)
            if flags & (Self.epollOut | Self.epollHup) != 0 { pairs[slot].up.writable = true }
            noteBackendGone(slot, flags)
        } else {
            noteReadable(&pairs[slot].up, flags)
            if flags & (Self.epollOut | Self.epollHup) != 0 { pairs[slot].down.writable = true }
        }
        pump(slot)
    }

    /// The backend takes nothing more (reset, or closed both ways: ERR or HUP). With nothing waiting for it no send
    /// would find out, and a quiet client would hold the pair until the idle timeout: the direction ends here, as a
    /// failed send ends it.
    private func noteBackendGone(_ slot: Int, _ flags: UInt32) {
        guard flags & (Self.epollErr | Self.epollHup) != 0, pairs[slot].up.start == pairs[slot].up.end, !pairs[slot].up.shut else { return }
        pairs[slot].up.sendFailed = true
        pairs[slot].up.eof = true
        pairs[slot].up.readable = false
        pairs[slot].up.shut = true
    }

    @inline(__always)
    private func noteReadable(_ direction: inout Direction, _ flags: UInt32) {
        if flags & (Self.epollIn | Self.epollRdHup | Self.epollHup) != 0 {
            direction.readable = true
            if flags & (Self.epollRdHup | Self.epollHup) != 0 { direction.peerClosing = true }
        }
    }

    /// Moves bytes both ways until each would block; closes the pair when both directions are done or one failed.
    private func pump(_ slot: Int) {
        let before = pairs[slot].up.total &+ pairs[slot].down.total
        var more = false
        move(&pairs[slot].up, more: &more)
        move(&pairs[slot].down, more: &more)
        let up = pairs[slot].up, down = pairs[slot].down
        // Done both ways, or a side was reset and what it sent before has been passed on.
        if (up.shut && down.shut) || (up.failed && up.shut) || (down.failed && down.shut) {
            // The answer is all written and the client may still be sending: closing now would reset the
            // connection and drop the answer's end in the kernel.
            if down.shut && !down.sendFailed && !up.readEnded {
                linger(slot)
            } else {
                closePair(slot, outcome: "closed")
            }
            return
        }
        if up.total &+ down.total != before {
            // Bytes read either way re-arm the idle timeout; an event that moved nothing does not.
            pairs[slot].lastActivity = now
        }
        if more { markReady(slot) }
    }

    /// The pair used its turn's budget with bytes still to move: served again after the next `epoll_wait`.
    private func markReady(_ slot: Int) {
        guard !pairs[slot].isReady else { return }
        pairs[slot].isReady = true
        ready.append(tag(slot, backend: false))
    }

    /// One direction: send what waits, then read and send until a side would block or ``readsPerTurn`` reads were
    /// made (`more` is then set). A failed read counts as an EOF (``Direction/failed``); a failed send ends the
    /// direction (what waits for a peer that is gone is dropped) while the other one finishes.
    @inline(__always)
    private func move(_ d: inout Direction, more: inout Bool) {
        var reads = 0
        while true {
            let pending = d.end - d.start
            if pending > 0 {
                guard d.writable else { return }
                let sent = Glibc.send(d.to, d.buffer! + d.start, pending, Int32(MSG_NOSIGNAL))
                if sent < 0 {
                    let code = errno
                    if code == EAGAIN || code == EWOULDBLOCK {
                        d.writable = false
                        return
                    }
                    if code == EINTR { continue }
                    d.start = 0
                    d.end = 0
                    d.sendFailed = true
                    d.eof = true
                    d.readable = false
                    d.shut = true
                    return
                }
                if sent < pending {
                    d.start += sent
                    d.writable = false
                    return
                }
                d.start = 0
                d.end = 0
            }
            if d.eof {
                if !d.shut {
                    _ = shutdown(d.to, Int32(SHUT_WR))
                    d.shut = true
                }
                return
            }
            guard d.readable else { return }
            guard reads < Self.readsPerTurn else {
                more = true
                return
            }
            reads += 1
            let count = Glibc.read(d.from, d.buffer!, Self.bufferSize)
            if count > 0 {
                d.end = count
                d.unreported &+= count
                d.total &+= count
                if count < Self.bufferSize && !d.peerClosing { d.readable = false }
                continue
            }
            if count == 0 {
                d.eof = true
                d.readEnded = true
                d.readable = false
                continue
            }
            let code = errno
            if code == EAGAIN || code == EWOULDBLOCK {
                d.readable = false
                return
            }
            if code == EINTR { continue }
            // A reset: what was read before it goes on (above), then the pair closes (`pump`).
            d.failed = true
            d.readEnded = true
            d.eof = true
            d.readable = false
        }
    }

    /// The backend is done and the answer written (the client's output shut): the backend socket closes now, the
    /// client's when it has sent its EOF (``LingeringClose``).
    private func linger(_ slot: Int) {
        releaseBackend(slot)
        pairs[slot].state = .lingering
        pairs[slot].lastActivity = now
        pairs[slot].idleTimeout = Int64((pairs[slot].runtime?.configuration.limits.lingeringTimeout ?? 5) * 1e9)
        pairs[slot].deadline = now + LingeringClose.maximumSeconds * 1_000_000_000
        // Bytes may be waiting already (no new edge will say so).
        pairs[slot].up.readable = true
        dropClientBytes(slot)
    }

    /// Closes the backend socket and gives back what the pair holds of the backend (its queue slot, its pick: the
    /// in-flight load). Byte counts are added first (they go through the pick).
    private func releaseBackend(_ slot: Int) {
        reportBytes(slot)
        let backendSocket = pairs[slot].up.to
        if backendSocket >= 0 { Glibc.close(backendSocket) }
        pairs[slot].up.to = -1
        pairs[slot].down.from = -1
        releaseQueuePosition(slot)
        if let pick = pairs[slot].pick {
            pairs[slot].pick = nil
            pairs[slot].runtime?.balancer.release(pick)
        }
    }

    /// Reads and drops what the lingering client sent, ``readsPerTurn`` reads at a time; closes at its EOF or error.
    private func dropClientBytes(_ slot: Int) {
        var reads = 0
        while pairs[slot].up.readable {
            guard reads < Self.readsPerTurn else {
                markReady(slot)
                return
            }
            reads += 1
            let count = Glibc.read(pairs[slot].up.from, pairs[slot].up.buffer!, Self.bufferSize)
            if count > 0 {
                pairs[slot].lastActivity = now
                if count < Self.bufferSize && !pairs[slot].up.peerClosing { pairs[slot].up.readable = false }
                continue
            }
            if count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                pairs[slot].up.readable = false
                return
            }
            if count < 0 && errno == EINTR { continue }
            closePair(slot, outcome: "closed")
            return
        }
    }

    private func reportBytes(_ slot: Int) {
        guard let counters = pairs[slot].pick?.counters else { return }
        if pairs[slot].up.unreported > 0 {
            counters.bytesToBackend.increment(by: Int64(pairs[slot].up.unreported))
            pairs[slot].up.unreported = 0
        }
        if pairs[slot].down.unreported > 0 {
            counters.bytesFromBackend.increment(by: Int64(pairs[slot].down.unreported))
            pairs[slot].down.unreported = 0
        }
    }

    private func closePair(_ slot: Int, outcome: StaticString) {
        guard pairs[slot].state != .free else { return }
        releaseBackend(slot)
        let client = pairs[slot].up.from
        if client >= 0 { Glibc.close(client) }
        pairs[slot].queueSettings = nil
        if let runtime = pairs[slot].runtime {
            if let sink = runtime.accessLog, var entry = pairs[slot].access {
                entry.bytesIn = pairs[slot].up.total
                entry.bytesOut = pairs[slot].down.total
                entry.write(to: sink, outcome: outcome)
            }
            runtime.metrics.activeConnections.decrement()
        }
        admission.leave()
        pairs[slot].state = .free
        pairs[slot].generation &+= 1
        // Its tag on ``ready``, if any, is stale now; the slot's next pair must be able to go on the list.
        pairs[slot].isReady = false
        pairs[slot].runtime = nil
        pairs[slot].client = nil
        pairs[slot].proxiedDestination = nil
        pairs[slot].access = nil
        pairs[slot].up.reset(from: -1, to: -1)
        pairs[slot].down.reset(from: -1, to: -1)
        freeSlots.append(Int32(slot))
        live -= 1
        if freeSlots.count > Self.spareBuffers { buffersToRelease = true }
    }

    private func grow() {
        let grown = max(64, capacity * 2)
        let storage = UnsafeMutablePointer<Pair>.allocate(capacity: grown)
        storage.moveInitialize(from: pairs, count: capacity)
        (storage + capacity).initialize(repeating: Pair(), count: grown - capacity)
        pairs.deallocate()
        pairs = storage
        for slot in stride(from: grown - 1, through: capacity, by: -1) { freeSlots.append(Int32(slot)) }
        capacity = grown
    }

    // MARK: epoll flags

    static let epollIn = EpollLoopCore.epollIn
    static let epollOut = EpollLoopCore.epollOut
    static let epollErr = EpollLoopCore.epollErr
    static let epollHup = EpollLoopCore.epollHup
    static let epollRdHup = EpollLoopCore.epollRdHup
    private static let pairEvents = EpollLoopCore.socketEvents
}
