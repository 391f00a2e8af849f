import ConcordNetworking
import Logging
import NIOCore
import NIOPosix
import NIOSSL

/// One TCP connection to one Redis server, authenticated and on its database, shared by any number of tasks:
/// their commands are pipelined and answered in order.
public final class RedisConnection: Sendable {
    public let endpoint: RedisEndpoint
    private let channel: any Channel
    private let handler: NIOLoopBound<RedisConnectionHandler>
    private let closeReason: RedisCloseReason
    /// The loop the connection's I/O runs on: a command sent from it is written at once, and its reply completes
    /// there.
    public var eventLoop: any EventLoop { channel.eventLoop }

    private init(
        endpoint: RedisEndpoint, channel: any Channel, handler: NIOLoopBound<RedisConnectionHandler>, closeReason: RedisCloseReason
    ) {
        self.endpoint = endpoint
        self.channel = channel
        self.handler = handler
        self.closeReason = closeReason
    }

    /// Connects (within `configuration.connectTimeout`), then authenticates (`AUTH`, or `HELLO 3 AUTH` for RESP3)
    /// and selects the database (within the command timeout). With `verifyAnswers`, a `PING` if nothing else is sent:
    /// a server that accepts connections but does not answer (stopped, hung) fails the connect, not a command. With `endpoint.tls` the TLS handshake comes first and
    /// is waited for (within the command timeout), so a refused certificate fails the connect, not the first
    /// command; `tlsContext` is the context a client shares among its connections, made from `endpoint.tls` when
    /// absent.
    public static func connect(
        to endpoint: RedisEndpoint,
        configuration: RedisClientConfiguration,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        tlsContext: NIOSSLContext? = nil,
        verifyAnswers: Bool = false,
        onPush: (@Sendable (RESPValue) -> Void)? = nil
    ) async throws(RedisClientError) -> RedisConnection {
        let decoder = configuration.decoder
        let tls: (settings: RedisTLS, context: NIOSSLContext)?
        if let settings = endpoint.tls {
            if let tlsContext { tls = (settings, tlsContext) } else { tls = (settings, try settings.makeContext()) }
        } else {
            tls = nil
        }
        let handshake: EventLoopPromise<Void>? = tls == nil ? nil : eventLoopGroup.any().makePromise()
        let closeReason = RedisCloseReason()
        let bootstrap = ClientBootstrap(group: eventLoopGroup)
            .connectTimeout(TimeAmount(configuration.connectTimeout))
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls, let handshake {
                        try channel.pipeline.syncOperations.addHandler(
                            try tls.settings.clientHandler(context: tls.context, host: endpoint.host))
                        try channel.pipeline.syncOperations.addHandler(RedisTLSHandshakeHandler(promise: handshake))
                    }
                    try channel.pipeline.syncOperations.addHandler(
                        RedisConnectionHandler(
                            commandTimeout: TimeAmount(configuration.commandTimeout), decoder: decoder, closeReason: closeReason,
                            peer: "\(endpoint.host):\(endpoint.port)", onPush: onPush))
                }
            }
        let channel: any Channel
        do {
            channel = try await bootstrap.connect(host: endpoint.host, port: endpoint.port).get()
        } catch ChannelError.connectTimeout {
            handshake?.fail(ChannelError.eof)
            throw .timeout("connect to \(endpoint) after \(configuration.connectTimeout)")
        } catch {
            handshake?.fail(error)
            if let local = LocalResourceFailure(error) { throw .localResources(local, endpoint: "\(endpoint)") }
            throw .connectionFailed("\(endpoint): \(ConnectFailure.describe(error))")
        }
        if let handshake {
            let timeout = channel.eventLoop.scheduleTask(in: TimeAmount(configuration.commandTimeout)) {
                handshake.fail(RedisClientError.timeout(
                    "TLS handshake with \(endpoint) after \(configuration.commandTimeout) (does that port speak TLS? rediss:// needs a tls-port)"))
            }
            do {
                try await handshake.futureResult.get()
                timeout.cancel()
            } catch {
                timeout.cancel()
                channel.close(promise: nil)
                if let error = error as? RedisClientError { throw error }
                throw .connectionFailed("\(endpoint): TLS: \(error)")
            }
        }
        let handler: NIOLoopBound<RedisConnectionHandler>
        do {
            handler = try await channel.eventLoop.submit {
                NIOLoopBound(try channel.pipeline.syncOperations.handler(type: RedisConnectionHandler.self), eventLoop: channel.eventLoop)
            }.get()
        } catch {
            channel.close(promise: nil)
            throw closeReason.error?.connectFailure(context: "\(endpoint)") ?? .connectionFailed("\(endpoint): closed while connecting")
        }
        let connection = RedisConnection(endpoint: endpoint, channel: channel, handler: handler, closeReason: closeReason)
        do {
            try await connection.handshake(protocolVersion: configuration.protocolVersion, ping: handshake != nil || verifyAnswers)
        } catch {
            connection.close()
            throw error.isServerError
                ? .connectionFailed("\(endpoint): handshake: \(error.serverMessage ?? "")") : error.connectFailure(context: "\(endpoint)")
        }
        return connection
    }

    /// `ping`: with nothing else to send, a `PING` — with TLS 1.3 a server that wants a client certificate refuses
    /// it only after the client's side of the handshake has ended, and that refusal belongs to the connect too.
    private func handshake(protocolVersion: Int, ping: Bool) async throws(RedisClientError) {
        var commands: [RedisCommand] = []
        if protocolVersion == 3 {
            var arguments: [RedisArgument] = ["3"]
            if let password = endpoint.password {
                arguments += ["AUTH", RedisArgument(endpoint.username ?? "default"), RedisArgument(password)]
            }
            commands.append(RedisCommand("HELLO", arguments))
        } else if let password = endpoint.password {
            commands.append(.auth(username: endpoint.username, password: password))
        }
        if endpoint.database != 0 { commands.append(.select(database: endpoint.database)) }
        if ping && commands.isEmpty { commands.append(.ping()) }
        guard !commands.isEmpty else { return }
        for reply in try await send(commands) {
            if case .error(let message) = reply { throw .server(message) }
        }
    }

    /// Whether the connection is still open (a closed one is replaced by the pool).
    public var isActive: Bool { channel.isActive }

    /// Whether a command went unanswered for the command timeout, which closes the connection (one atomic load:
    /// the pool asks for every command).
    var leftCommandUnanswered: Bool { closeReason.isTimeout }

    /// The timeout that closed the connection, if ``leftCommandUnanswered``.
    var unansweredTimeout: RedisClientError? { leftCommandUnanswered ? closeReason.error : nil }

    /// Completes when the connection has closed (for whatever reason).
    var closeFuture: EventLoopFuture<Void> { channel.closeFuture }

    /// Sends one command and returns its reply. Error replies are returned as `.error`, not thrown.
    /// - Throws: ``RedisClientError`` when the connection closes or the reply takes longer than the command timeout
    ///   (which closes the connection: later replies could no longer be matched to their commands).
    public func send(_ command: RedisCommand) async throws(RedisClientError) -> RESPValue {
        let result = await withUnsafeContinuation { continuation in
            let request = RedisRequest(command: command, reply: .task(continuation))
            if channel.eventLoop.inEventLoop {
                write(request)
            } else {
                // What `channel.write` would do from another thread anyway, plus the check in `write`.
                channel.eventLoop.execute { [self] in write(request) }
            }
        }
        return try result.get()
    }

    /// Sends several commands back to back on this connection and returns their replies in order. They are written
    /// in one event-loop task, so no other caller's command can come between them (`ASKING` must immediately precede
    /// the command it is for).
    public func send(_ commands: [RedisCommand]) async throws(RedisClientError) -> [RESPValue] {
        let futures = enqueue(commands)
        var replies: [RESPValue] = []
        replies.reserveCapacity(futures.count)
        for future in futures { replies.append(try await reply(to: future)) }
        return replies
    }

    /// Subscribes to `channels` (RESP3: the confirmations and the messages arrive as pushes, to the `onPush` given
    /// at connect). Fails when the connection has closed.
    func subscribe(_ channels: [String]) async throws(RedisClientError) {
        let command = RedisCommand("SUBSCRIBE", channels.map { RedisArgument($0) })
        let handler = self.handler
        let written = try? await channel.eventLoop.submit { handler.value.sendUnanswered(command) }.get()
        guard written == true else { throw (closeReason.error ?? .connectionClosed).notSent() }
    }

    public func close() {
        channel.close(promise: nil)
    }

    /// Closes and waits until the channel is closed, so the pool no longer hands the connection out.
    func closeAndWait() async {
        try? await channel.close().get()
    }

    private func enqueue(_ commands: [RedisCommand]) -> [EventLoopFuture<RESPValue>] {
        let promises = commands.map { _ in channel.eventLoop.makePromise(of: RESPValue.self) }
        let requests = zip(commands, promises).map { RedisRequest(command: $0, promise: $1) }
        if channel.eventLoop.inEventLoop {
            for request in requests { write(request) }
        } else {
            // One task for all of them, so nothing runs between their writes.
            channel.eventLoop.execute { [self] in for request in requests { write(request) } }
        }
        return promises.map(\.futureResult)
    }

    /// On the event loop. A command written after the connection closed would never reach the handler (NIO removes
    /// it when the channel closes) and its caller would wait forever, with no handler to time it out; a handler still
    /// in the pipeline answers or fails every command it sees.
    private func write(_ request: RedisRequest) {
        guard channel.isActive, handler.value.send(request) else {
            request.reply.fail((closeReason.error ?? RedisClientError.connectionClosed).notSent())
            return
        }
    }

    private func reply(to future: EventLoopFuture<RESPValue>) async throws(RedisClientError) -> RESPValue {
        do {
            return try await future.get()
        } catch let error as RedisClientError {
            throw error
        } catch {
            throw .connectionFailed("\(endpoint): \(error)")
        }
    }
}

extension TimeAmount {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self = .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
