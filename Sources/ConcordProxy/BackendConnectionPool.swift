import NIOCore
import NIOPosix

/// Keep-alive connections to backends, one pool per event loop so a client connection and its backend
/// connection always share a thread (no hops, no locks). Not thread-safe by design: it is only touched on its loop.
final class BackendConnectionPool {
    let eventLoop: any EventLoop
    /// Set on its loop by a reload (`connectTimeout`, `maxIdleConnectionsPerBackend` apply to the next use).
    var limits: ProxyLimits
    /// TLS for new connections (a reload replaces it; open connections keep theirs).
    var tls: BackendTLS?
    private var idle: [String: [BackendHTTPHandler]] = [:]

    /// Non-idempotent requests reuse only a connection used this recently: backends close idle connections on
    /// their own timers, and a POST sent on a connection closing at that moment cannot be safely resent.
    static let freshEnoughForUnsafeRequests = TimeAmount.seconds(2)

    init(eventLoop: any EventLoop, limits: ProxyLimits) {
        self.eventLoop = eventLoop
        self.limits = limits
    }

    /// An idle connection to `backend`, most recently used first, or `nil`.
    func takeIdle(for backend: Backend, idempotent: Bool) -> BackendHTTPHandler? {
        // One lookup, the list mutated in place through its index (a copied-out list would be copied again on every
        // pop; the `default:` subscript would insert a list for a backend that has none).
        guard let slot = idle.index(forKey: backend.id) else { return nil }
        return Self.take(from: &idle.values[slot], idempotent: idempotent, pool: self)
    }

    private static func take(from list: inout [BackendHTTPHandler], idempotent: Bool, pool: BackendConnectionPool) -> BackendHTTPHandler? {
        while let connection = list.popLast() {
            connection.idleIn = nil
            if !connection.isActive { continue }
            if !idempotent && NIODeadline.now() - connection.lastUsed > freshEnoughForUnsafeRequests {
                // Keep it for an idempotent request instead.
                connection.idleIn = pool
                list.insert(connection, at: 0)
                return nil
            }
            if !idempotent && connection.backendHasClosed {
                connection.close()
                continue
            }
            return connection
        }
        return nil
    }

    /// Opens a new connection on this loop; its only handler is a ``BackendHTTPHandler`` (requests go as bytes,
    /// responses are framed by the handler).
    func connect(to backend: Backend, _ completion: @escaping (Result<BackendHTTPHandler, any Error>) -> Void) {
        let framerLimits = HTTPResponseFramer.Limits(maxHeadBytes: limits.maxResponseHeadBytes, maxHeaderCount: limits.maxHeaderCount)
        let tls = self.tls
        let future = ClientBootstrap(group: eventLoop)
            .connectTimeout(TimeAmount(seconds: limits.connectTimeout))
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls { try channel.pipeline.syncOperations.addHandler(try tls.clientHandler(for: backend)) }
                    try channel.pipeline.syncOperations.addHandler(BackendHTTPHandler(backend: backend, limits: framerLimits))
                }
            }
            .connect(to: backend.socketAddress)
        future.assumeIsolated().whenComplete { result in
            switch result {
            case .success(let channel):
                do {
                    completion(.success(try channel.pipeline.syncOperations.handler(type: BackendHTTPHandler.self)))
                } catch {
                    channel.close(promise: nil)
                    completion(.failure(error))
                }
            case .failure(let error):
                completion(.failure(error))
            }
        }
    }

    /// Returns a connection whose exchange completed cleanly; closes it if the pool is full.
    func release(_ connection: BackendHTTPHandler) {
        connection.delegate = nil
        guard connection.isActive, connection.responseKeepAlive else {
            connection.close()
            return
        }
        if !Self.keep(connection, in: &idle[connection.backend.id, default: []], limit: limits.maxIdleConnectionsPerBackend) {
            connection.close()
            return
        }
        connection.idleIn = self
    }

    private static func keep(_ connection: BackendHTTPHandler, in list: inout [BackendHTTPHandler], limit: Int) -> Bool {
        guard list.count < limit else { return false }
        list.append(connection)
        return true
    }

    /// An idle connection closed.
    func forget(_ connection: BackendHTTPHandler) {
        idle[connection.backend.id]?.removeAll { $0 === connection }
    }

    /// Closes every idle connection (shutdown).
    func closeAll() {
        for list in idle.values { for connection in list { connection.idleIn = nil; connection.close() } }
        idle.removeAll()
    }
}
