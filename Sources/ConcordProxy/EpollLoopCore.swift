import CConcordSystem
import ConcordNetworking
import Logging
import NIOConcurrencyHelpers
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// What one thread of the direct engine does with its connections (``TCPForwardingLoop``, ``HTTPForwardingLoop``);
/// ``EpollLoopCore`` runs the thread and calls it.
protocol EpollLoopHandler: AnyObject {
    /// `epoll_wait`'s timeout in milliseconds: 0 while work is ready, ``EpollLoopCore/sweepMilliseconds`` while
    /// connections may time out, -1 when idle.
    var waitTimeout: Int32 { get }
    /// A client connection was accepted (a non-blocking socket the handler now owns).
    func accepted(_ fd: Int32, peer: SocketAddress?)
    /// An epoll event with the data the handler registered (never ``EpollLoopCore``'s own tags).
    func handle(_ data: UInt64, _ flags: UInt32)
    /// After each batch of events.
    func afterEvents()
    /// Every ``EpollLoopCore/sweepInterval``: timeouts.
    func sweep()
    /// Closes every connection; returns how many client connections there were.
    func closeAll() -> Int
}

/// The parts every thread of the direct engine shares: its epoll set, the listener it accepts from (edge-triggered,
/// shared between threads with EPOLLEXCLUSIVE), an eventfd and a locked command queue through which other threads
/// reach it, a coarse clock, and the loop that drives an ``EpollLoopHandler``. Everything but ``send(_:)`` runs on
/// the loop's own thread.
final class EpollLoopCore: @unchecked Sendable {
    // @unchecked: the mutable state (listener, clock, pause) is touched only by the loop's thread in `run(_:)`; other
    // threads reach the loop only through `commands` (locked) and the eventfd.

    enum Command {
        /// Stop accepting; `done` is called (on the loop) once the listener is out of its epoll set.
        case stopAccepting(done: @Sendable () -> Void)
        /// Close every connection; `done` gets how many there were.
        case closeAll(done: @Sendable (Int) -> Void)
        /// Close every connection and end the thread.
        case exit(done: @Sendable () -> Void)
        /// Work for the loop's thread (a queue wait that ended, the proxy stopping).
        case run(@Sendable () -> Void)

        /// Answers a command the loop will never run (it has ended): nothing of it is left to stop or close. Work
        /// still runs: every connection is gone, so what it gives back (a queue slot) goes back.
        func answerEnded() {
            switch self {
            case .stopAccepting(let done), .exit(let done): done()
            case .closeAll(let done): done(0)
            case .run(let work): work()
            }
        }
    }

    static let sweepInterval: Int64 = 100_000_000
    static let sweepMilliseconds = Int32(sweepInterval / 1_000_000)
    /// How long accepting waits after it failed (or a connect ran out of descriptors).
    private static let acceptPause: Int64 = 100_000_000
    private static let listenerTag = UInt64.max
    private static let wakeTag = UInt64.max - 1

    let epoll: Int32
    private let wake: Int32
    private var listener: Int32
    private let commands = NIOLockedValueBox<[Command]?>([])
    private let events: UnsafeMutableRawPointer
    private let eventCapacity: Int32 = 512
    private let runtimes: NIOLockedValueBox<ProxyRuntime>
    private let logger: Logger
    private let role: String
    /// Coarse monotonic nanoseconds, read after each `epoll_wait`.
    private(set) var now: Int64 = 0
    private var nextSweep: Int64 = 0
    /// Out of descriptors at `accept` (or at a connect): the listener is tried again after this (an edge-triggered
    /// listener that is not drained is not reported again until a new client arrives).
    private(set) var acceptPausedUntil: Int64?
    private var exiting = false

    /// `listener`: a non-blocking listening socket this loop accepts from (others may share it: `exclusive`).
    /// `role` names the loop in errors and logs ("TCP forwarding loop").
    init(listener: Int32, exclusive: Bool, runtimes: NIOLockedValueBox<ProxyRuntime>, logger: Logger, role: String) throws(ProxyError) {
        epoll = c_concord_epoll_create()
        wake = c_concord_eventfd()
        guard epoll >= 0, wake >= 0 else {
            let reason = String(cString: strerror(errno))
            if epoll >= 0 { Glibc.close(epoll) }
            if wake >= 0 { Glibc.close(wake) }
            throw ProxyError.invalidSetting("cannot set up a \(role): \(reason)")
        }
        self.listener = listener
        self.runtimes = runtimes
        self.logger = logger
        self.role = role
        events = c_concord_epoll_events_allocate(eventCapacity)!
        // A listener several loops share wakes one of them per arrival (EPOLLEXCLUSIVE), which accepts until EAGAIN.
        let listenerEvents = Self.epollIn | Self.epollET | (exclusive ? Self.epollExclusive : 0)
        guard c_concord_epoll_control(epoll, listener, 0, listenerEvents, Self.listenerTag) == 0,
              c_concord_epoll_control(epoll, wake, 0, Self.epollIn | Self.epollET, Self.wakeTag) == 0 else {
            // Every property is set: `deinit` closes the descriptors.
            throw ProxyError.invalidSetting("cannot set up a \(role): \(String(cString: strerror(errno)))")
        }
    }

    deinit {
        c_concord_epoll_events_free(events)
        Glibc.close(epoll)
        Glibc.close(wake)
    }

    /// Queues a command for the loop (any thread); answered at once if the loop has ended.
    func send(_ command: Command) {
        let queued = commands.withLockedValue { list -> Bool in
            guard list != nil else { return false }
            list!.append(command)
            return true
        }
        guard queued else {
            command.answerEnded()
            return
        }
        var one: UInt64 = 1
        _ = Glibc.write(wake, &one, 8)
    }

    /// Adds `fd` to the epoll set (edge-triggered `events`, with `data`); false (and `errno`) on failure.
    func register(_ fd: Int32, events: UInt32, data: UInt64) -> Bool {
        c_concord_epoll_control(epoll, fd, 0, events, data) == 0
    }

    /// Takes `fd` out of the epoll set (before handing it elsewhere).
    func unregister(_ fd: Int32) {
        _ = c_concord_epoll_control(epoll, fd, 2, 0, 0)
    }

    /// Accepting waits ``acceptPause`` (a connect ran out of descriptors: every client in the backlog would fail too).
    func pauseAccepting() {
        acceptPausedUntil = now + Self.acceptPause
    }

    // MARK: The loop

    /// Runs on the calling thread (pinned to `cpu`) until an `exit` command, then answers the commands left.
    func run(_ handler: some EpollLoopHandler, cpu: Int?) {
        if let cpu, c_concord_pin_current_thread(Int32(cpu)) != 0 {
            logger.debug("cpu affinity: cannot pin a \(role) to CPU \(cpu)")
        }
        now = c_concord_coarse_now()
        nextSweep = now + Self.sweepInterval
        while !exiting {
            var timeout = handler.waitTimeout
            // A paused listener is tried again at the next sweep.
            if acceptPausedUntil != nil && (timeout < 0 || timeout > Self.sweepMilliseconds) { timeout = Self.sweepMilliseconds }
            let count = c_concord_epoll_wait(epoll, events, eventCapacity, timeout)
            now = c_concord_coarse_now()
            if count < 0 {
                if errno == EINTR { continue }
                logger.critical("\(role): epoll_wait failed: \(String(cString: strerror(errno))); closing its connections")
                stopAccepting()
                _ = handler.closeAll()
                break
            }
            var index: Int32 = 0
            while index < count {
                let data = c_concord_epoll_event_data(events, index)
                let flags = c_concord_epoll_event_flags(events, index)
                index += 1
                if data == Self.listenerTag {
                    acceptAll(handler)
                } else if data == Self.wakeTag {
                    runCommands(handler)
                } else {
                    handler.handle(data, flags)
                }
            }
            handler.afterEvents()
            if now >= nextSweep {
                nextSweep = now + Self.sweepInterval
                handler.sweep()
                if let until = acceptPausedUntil, now >= until {
                    acceptPausedUntil = nil
                    acceptAll(handler)
                }
            }
        }
        // Commands still queued (or sent from now on) are answered: their senders are waiting.
        let left = commands.withLockedValue { list -> [Command] in
            defer { list = nil }
            return list ?? []
        }
        for command in left { command.answerEnded() }
    }

    private func runCommands(_ handler: some EpollLoopHandler) {
        var drained: UInt64 = 0
        _ = Glibc.read(wake, &drained, 8)
        let pending = commands.withLockedValue { list -> [Command] in
            defer { list?.removeAll() }
            return list ?? []
        }
        for command in pending {
            switch command {
            case .stopAccepting(let done):
                stopAccepting()
                done()
            case .closeAll(let done):
                done(handler.closeAll())
            case .exit(let done):
                stopAccepting()
                _ = handler.closeAll()
                exiting = true
                done()
            case .run(let work):
                work()
            }
        }
    }

    private func stopAccepting() {
        guard listener >= 0 else { return }
        // Out of this loop's set; the engine closes the socket once every loop has let go of it.
        _ = c_concord_epoll_control(epoll, listener, 2, 0, 0)
        listener = -1
        acceptPausedUntil = nil
    }

    private func acceptAll(_ handler: some EpollLoopHandler) {
        // A connect out of descriptors pauses accepting too (``pauseAccepting()``): the loop stops at once.
        while listener >= 0 && acceptPausedUntil == nil {
            var storage = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let fd = c_concord_accept(listener, &storage, &length)
            if fd < 0 {
                let code = errno
                if code == EAGAIN || code == EWOULDBLOCK { return }
                // A client that left, or a network error accept(2) says to retry on.
                if [EINTR, ECONNABORTED, EPROTO, ENETDOWN, ENOPROTOOPT, EHOSTDOWN, ENONET, EHOSTUNREACH, EOPNOTSUPP, ENETUNREACH].contains(code) {
                    continue
                }
                if let local = LocalResourceFailure(IOError(errnoCode: code, reason: "accept")) {
                    runtimes.withLockedValue { $0 }.balancer.localResources.report(
                        local, while: "accepting a client connection", outcome: "new clients wait in the backlog for 100 ms")
                } else {
                    logger.error("\(role): accept failed: \(String(cString: strerror(code))); trying again in 100 ms")
                }
                // An edge-triggered listener left undrained is not reported again until a new client comes.
                pauseAccepting()
                return
            }
            handler.accepted(fd, peer: Self.socketAddress(storage))
        }
    }

    // MARK: Sockets

    /// A non-blocking, close-on-exec stream socket of `address`'s family; -1 (and `errno`) when it cannot be made.
    static func streamSocket(for address: SocketAddress) -> Int32 {
        socket(address.protocolFamily, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    }

    static func socketAddress(_ storage: sockaddr_storage) -> SocketAddress? {
        var storage = storage
        switch Int32(storage.ss_family) {
        case AF_INET:
            return withUnsafeBytes(of: &storage) { SocketAddress($0.load(as: sockaddr_in.self)) }
        case AF_INET6:
            return withUnsafeBytes(of: &storage) { SocketAddress($0.load(as: sockaddr_in6.self)) }
        default:
            return nil
        }
    }

    static func localAddress(of fd: Int32) -> SocketAddress? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let result = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return result == 0 ? socketAddress(storage) : nil
    }

    // MARK: epoll flags

    static let epollIn: UInt32 = 0x001
    static let epollOut: UInt32 = 0x004
    static let epollErr: UInt32 = 0x008
    static let epollHup: UInt32 = 0x010
    static let epollRdHup: UInt32 = 0x2000
    static let epollExclusive: UInt32 = 1 << 28
    static let epollET: UInt32 = 1 << 31
    /// A connection socket: readable, writable, the peer's FIN; edge-triggered.
    static let socketEvents = epollIn | epollOut | epollRdHup | epollET
}
