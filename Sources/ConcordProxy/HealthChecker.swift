import ConcordNetworking
import NIOCore
import NIOPosix

/// Active health checks: every `interval`, each backend is probed (HTTP `GET path` expecting 2xx/3xx, or a TCP
/// connect) and the result goes to its ``HealthStateMachine`` through the ``Balancer``, which logs one line per flip.
///
/// The settings are read from the balancer at the start of every round, so a reload that changes `interval`,
/// `timeout`, `path`, `rise` or `fall` takes effect from the next round. Rounds are timed on `clock` (injected,
/// like Hummingbird's `MemoryPersistDriver<C: Clock>`), so tests drive them without sleeping.
struct HealthChecker<C: Clock>: Sendable where C.Duration == Duration {
    let balancer: Balancer
    let group: any EventLoopGroup
    let clock: C
    /// TLS for HTTP probes (``ProxyConfiguration/backendTLS``), read for every probe so a reload applies.
    let backendTLS: @Sendable () -> BackendTLS?

    init(balancer: Balancer, group: any EventLoopGroup, clock: C, backendTLS: @escaping @Sendable () -> BackendTLS? = { nil }) {
        self.balancer = balancer
        self.group = group
        self.clock = clock
        self.backendTLS = backendTLS
    }

    init(balancer: Balancer, group: any EventLoopGroup, backendTLS: @escaping @Sendable () -> BackendTLS? = { nil }) where C == ContinuousClock {
        self.init(balancer: balancer, group: group, clock: ContinuousClock(), backendTLS: backendTLS)
    }

    /// Probes every backend, waits `interval`, and again, until the task is cancelled; a backend added meanwhile
    /// (pending, ``Balancer/joiningBackends()``) is probed at once, so it joins within one probe instead of one
    /// interval.
    func run() async {
        let joining = balancer.joiningBackends()
        await withDiscardingTaskGroup { tasks in
            tasks.addTask { await probeJoining(joining) }
            await rounds()
            tasks.cancelAll()
        }
    }

    /// A round starts `interval` after the one before started, or when that one's slowest probe ends (bounded by
    /// `timeout`) if later: with `timeout` ≤ `interval` a backend that never answers delays no round (its probe's
    /// time, up to twice `timeout`, used to be added to every backend's period).
    private func rounds() async {
        while !Task.isCancelled {
            let configuration = balancer.healthConfiguration
            let start = clock.now
            await probeAll(configuration)
            do {
                try await clock.sleep(until: start.advanced(by: .milliseconds(Int(configuration.interval * 1000))), tolerance: nil)
            } catch {
                return
            }
        }
    }

    /// Each backend added while running gets its first probe now (its verdict alone decides: up or down).
    private func probeJoining(_ joining: AsyncStream<BackendHandle>) async {
        await withDiscardingTaskGroup { probes in
            for await handle in joining {
                probes.addTask { await probeAndRecord(handle, balancer.healthConfiguration) }
            }
        }
    }

    /// One round: every current backend is probed at once and each result is recorded.
    func probeAll(_ configuration: HealthCheckConfiguration) async {
        await withTaskGroup(of: Void.self) { tasks in
            for handle in balancer.probeTargets {
                tasks.addTask { await probeAndRecord(handle, configuration) }
            }
        }
    }

    private func probeAndRecord(_ handle: BackendHandle, _ configuration: HealthCheckConfiguration) async {
        let (healthy, detail) = await probe(handle.backend, configuration)
        // No verdict when the probe failed on this machine (out of descriptors): nothing is recorded.
        if Task.isCancelled { return }
        if let healthy { balancer.recordProbe(handle, success: healthy, detail: detail) }
    }

    /// One probe, bounded by `timeout` from connect to status line: healthy or not, or nil when it could not be made
    /// (``LocalResourceFailure``). (The status line had `timeout` more after the connect, so a 1.5-s answer passed
    /// a 1-s timeout.)
    func probe(_ backend: Backend, _ configuration: HealthCheckConfiguration) async -> (Bool?, String) {
        let timeout = TimeAmount(seconds: configuration.timeout)
        let promise = group.any().makePromise(of: (Bool?, String).self)
        // A TCP-connect check only connects; an HTTP check speaks TLS when the backends do.
        let tls = configuration.path == nil ? nil : backendTLS()
        let channelFuture = ClientBootstrap(group: promise.futureResult.eventLoop)
            .connectTimeout(timeout)
            .channelInitializer { [path = configuration.path] channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls { try channel.pipeline.syncOperations.addHandler(try tls.clientHandler(for: backend)) }
                    try channel.pipeline.syncOperations.addHandler(HealthProbeHandler(path: path, host: backend.address.description, promise: promise))
                }
            }
            .connect(to: backend.socketAddress)
        channelFuture.whenFailure { [balancer] error in
            if let local = LocalResourceFailure(error) {
                balancer.localResources.report(local, while: "the health check of \(backend)", outcome: "no result recorded")
                promise.succeed((nil, "health check not made: \(local)"))
            } else {
                promise.succeed((false, "health check connect failed: \(ConnectFailure.describe(error))"))
            }
        }
        let eventLoop = promise.futureResult.eventLoop
        let deadline = eventLoop.scheduleTask(in: timeout) {
            promise.succeed((false, "health check timed out after \(configuration.timeout) s"))
        }
        let result: (Bool?, String) = (try? await promise.futureResult.get()) ?? (false, "health check failed")
        deadline.cancel()
        if let channel = try? await channelFuture.get() { try? await channel.close() }
        return result
    }
}

/// Sends `GET path` (or nothing, for a TCP check) and judges the status line.
private final class HealthProbeHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let path: String?
    let host: String
    let promise: EventLoopPromise<(Bool?, String)>
    private var received = ByteBuffer()

    init(path: String?, host: String, promise: EventLoopPromise<(Bool?, String)>) {
        self.path = path
        self.host = host
        self.promise = promise
    }

    func channelActive(context: ChannelHandlerContext) {
        guard let path else {
            promise.succeed((true, "TCP connect succeeded"))
            context.close(promise: nil)
            return
        }
        var request = context.channel.allocator.buffer(capacity: 128)
        request.writeString("GET \(path) HTTP/1.1\r\nHost: \(host)\r\nUser-Agent: concord-proxy-health\r\nConnection: close\r\n\r\n")
        context.writeAndFlush(NIOAny(request), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var chunk = unwrapInboundIn(data)
        received.writeBuffer(&chunk)
        guard let line = received.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) else {
            if received.readableBytes > 4096 { finish(context, (false, "health check: no status line")) }
            return
        }
        let statusLine = String(decoding: received.readableBytesView[..<line], as: UTF8.self)
        let parts = statusLine.split(separator: " ")
        if parts.count >= 2, parts[0].hasPrefix("HTTP/"), let code = Int(parts[1]) {
            finish(context, ((200..<400).contains(code), "GET \(path ?? "") answered \(code)"))
        } else {
            finish(context, (false, "health check: malformed status line"))
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.succeed((false, "health check: connection closed before a status line"))
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        finish(context, (false, "health check failed: \(error)"))
    }

    private func finish(_ context: ChannelHandlerContext, _ result: (Bool?, String)) {
        promise.succeed(result)
        context.close(promise: nil)
    }
}
