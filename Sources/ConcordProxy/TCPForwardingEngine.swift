import ConcordNetworking
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// What forwards an L4 (`tcp` mode) connection's bytes (`tcpEngine` in YAML, `--tcp-engine`).
public enum TCPEngine: String, Sendable, Hashable, Codable, SettingChoice, CustomStringConvertible {
    /// The proxy's own epoll loops (``TCPForwardingEngine``), when the configuration allows it (else `nio`, said at
    /// start): the default.
    case direct
    /// SwiftNIO channels, as every `http` connection.
    case nio

    public var description: String { rawValue }
}

/// A thread of the direct engine: ``TCPForwardingLoop`` (L4) or ``HTTPForwardingLoop`` (L7).
protocol ForwardingLoop: AnyObject, Sendable {
    /// The loop itself, on its own thread, until an `exit` command.
    func run()
    /// Queues a command for the loop (any thread).
    func send(_ command: EpollLoopCore.Command)
}

/// What the direct engine forwards: L4 byte streams, or L7 exchanges (with the connections it does not serve
/// itself handed to the NIO path).
enum DirectEngineKind {
    case tcp
    case http(handOff: HTTPForwardingLoop.HandOff)
}

/// What serves an L7 (`http` mode) connection (`httpEngine` in YAML, `--http-engine`).
public enum HTTPEngine: String, Sendable, Hashable, Codable, SettingChoice, CustomStringConvertible {
    /// The proxy's own epoll loops (``HTTPForwardingLoop``), when the configuration allows it (else `nio`, said at
    /// start): the default. A request that switches protocols (a WebSocket tunnel) is handed to SwiftNIO.
    case direct
    /// SwiftNIO channels, as TLS (and so HTTP/2) always is.
    case nio

    public var description: String { rawValue }
}

/// L4 forwarding without SwiftNIO: `tcpEngine: direct`, the default in `tcp` mode. The client listener and every
/// connection pair live on ``TCPForwardingLoop`` threads (one per event loop of the proxy's group, pinned like
/// them), each with its own epoll set; SwiftNIO keeps the admin API and the health checks. SwiftNIO's channel
/// pipeline cost ≈ 3.7 µs of user-space CPU per forwarded chunk against nginx's ≈ 1 µs (`perf`, 2026-12-03 05:22),
/// so the NIO path used 1.23–1.29× the CPU per request of nginx and HAProxy; the prototype of these loops used
/// ≈ 0.5 µs (08:17; docs/proxy-benchmarks.md).
///
/// What it does not do falls back to the NIO path (``ineligibility(of:)``): TLS on the client listener or to the
/// backends.
final class TCPForwardingEngine: Sendable {
    /// Open pairs across the loops, against `limits.maxConnections`.
    final class Admission: Sendable {
        private let open = NIOLockedValueBox(0)

        func admit(limit: Int) -> Bool {
            open.withLockedValue { count in
                guard count < limit else { return false }
                count += 1
                return true
            }
        }

        func leave() { open.withLockedValue { $0 -= 1 } }

        var count: Int { open.withLockedValue { $0 } }
    }

    private let loops: [any ForwardingLoop]
    private let listeners: [Int32]
    private let admission: Admission
    private let buffers: TCPForwardingLoop.BufferAccount
    private let finished = NIOLockedValueBox(0)
    private let closedListeners = NIOLockedValueBox(false)
    /// The address the listener is bound to (a port 0 asked for became a real port).
    let localAddress: SocketAddress

    /// Why `configuration` cannot run on the direct engine, or `nil` when it can.
    static func ineligibility(of configuration: ProxyConfiguration) -> String? {
        if configuration.tls != nil { return "TLS on the client listener" }
        if configuration.backendTLS != nil { return "TLS to the backends" }
        return nil
    }

    /// Binds the listener(s) and starts `threads` loops. `cpus`: the CPU of each loop (round-robin), or `nil`.
    init(kind: DirectEngineKind = .tcp, listen: SocketAddress, reusePort: Bool, threads: Int, cpus: [Int]?,
         runtimes: NIOLockedValueBox<ProxyRuntime>, display: HostPort, logger: Logger) throws(ProxyError) {
        let threads = max(1, threads)
        var listeners: [Int32] = []
        var address = listen
        do {
            for _ in 0..<(reusePort ? threads : 1) {
                let fd = try Self.listen(on: address, reusePort: reusePort)
                listeners.append(fd)
                if let bound = EpollLoopCore.localAddress(of: fd) { address = bound }
            }
        } catch {
            for fd in listeners { Glibc.close(fd) }
            throw ProxyError.cannotListen(on: display, role: "client listener", error: error)
        }
        let admission = Admission()
        let buffers = TCPForwardingLoop.BufferAccount(meter: runtimes.withLockedValue { $0.metrics.tcpBufferBytes })
        var loops: [any ForwardingLoop] = []
        do {
            for index in 0..<threads {
                let listener = listeners[reusePort ? index : 0]
                let cpu = cpus.flatMap { $0.isEmpty ? nil : $0[index % $0.count] }
                switch kind {
                case .tcp:
                    loops.append(try TCPForwardingLoop(
                        listener: listener, exclusive: !reusePort, runtimes: runtimes, admission: admission,
                        bufferBytes: buffers, logger: logger, cpu: cpu))
                case .http(let handOff):
                    loops.append(try HTTPForwardingLoop(
                        listener: listener, exclusive: !reusePort, runtimes: runtimes, admission: admission,
                        handOff: handOff, logger: logger, cpu: cpu))
                }
            }
        } catch {
            for fd in listeners { Glibc.close(fd) }
            throw error
        }
        self.loops = loops
        self.listeners = listeners
        self.admission = admission
        self.buffers = buffers
        self.localAddress = address
        for loop in loops {
            let finished = self.finished
            let thread = Thread {
                loop.run()
                finished.withLockedValue { $0 += 1 }
            }
            thread.name = loop is HTTPForwardingLoop ? "concord-http-forwarding" : "concord-tcp-forwarding"
            thread.start()
        }
    }

    /// Client connections open on the loops.
    var openConnections: Int { admission.count }

    /// Bytes of connection buffers the loops hold (two 16-KiB buffers per pair, kept for ``TCPForwardingLoop/spareBuffers``
    /// free slots per loop).
    var bufferBytes: Int { buffers.bytes }

    /// Stops accepting: the loops let go of the listener(s), which are then closed.
    func stopAccepting() async {
        guard !closedListeners.withLockedValue({ closed in defer { closed = true }; return closed }) else { return }
        for loop in loops {
            await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                loop.send(.stopAccepting { done.resume() })
            }
        }
        for fd in listeners { Glibc.close(fd) }
    }

    /// Tells the HTTP loops' connections that the proxy stops (``HTTPForwardingLoop/proxyStopping(idleGrace:)``).
    func announceStop(idleGrace: Double) {
        for case let loop as HTTPForwardingLoop in loops {
            loop.send(.run { loop.proxyStopping(idleGrace: idleGrace) })
        }
    }

    /// Runs `work` on every loop's thread (tests hold a loop this way).
    func runOnLoops(_ work: @escaping @Sendable () -> Void) {
        for loop in loops { loop.send(.run(work)) }
    }

    /// `figure` of each HTTP loop, read on the loop's thread (none on the TCP engine).
    func httpLoopFigures(_ figure: @escaping @Sendable (HTTPForwardingLoop) -> Int) async -> [Int] {
        var figures: [Int] = []
        for case let loop as HTTPForwardingLoop in loops {
            figures.append(await withCheckedContinuation { (done: CheckedContinuation<Int, Never>) in
                loop.send(.run { done.resume(returning: figure(loop)) })
            })
        }
        return figures
    }

    /// Closes every open pair; returns how many there were.
    func closeAll() async -> Int {
        var closed = 0
        for loop in loops {
            closed += await withCheckedContinuation { (done: CheckedContinuation<Int, Never>) in
                loop.send(.closeAll { done.resume(returning: $0) })
            }
        }
        return closed
    }

    /// Stops accepting, closes every pair and ends the loops' threads.
    func shutdown() async {
        await stopAccepting()
        for loop in loops {
            await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                loop.send(.exit { done.resume() })
            }
        }
        // The threads return from `run()` right after their exit command.
        while finished.withLockedValue({ $0 }) < loops.count {
            try? await Task.sleep(for: .milliseconds(2))
        }
    }

    // MARK: Sockets

    private static func listen(on address: SocketAddress, reusePort: Bool) throws -> Int32 {
        let fd = EpollLoopCore.streamSocket(for: address)
        guard fd >= 0 else { throw IOError(errnoCode: errno, reason: "socket") }
        func option(_ level: Int32, _ name: Int32, _ value: Int32) {
            var value = value
            _ = setsockopt(fd, level, name, &value, socklen_t(MemoryLayout<Int32>.size))
        }
        option(SOL_SOCKET, SO_REUSEADDR, 1)
        option(SOL_SOCKET, SO_REUSEPORT, reusePort ? 1 : 0)
        // Accepted sockets inherit it (no Nagle delay on small responses), one system call less per connection.
        option(Int32(IPPROTO_TCP), TCP_NODELAY, 1)
        let bound = address.withSockAddr { bind(fd, $0, socklen_t($1)) }
        guard bound == 0, Glibc.listen(fd, 1024) == 0 else {
            let code = errno
            Glibc.close(fd)
            throw IOError(errnoCode: code, reason: bound == 0 ? "listen" : "bind")
        }
        return fd
    }
}
