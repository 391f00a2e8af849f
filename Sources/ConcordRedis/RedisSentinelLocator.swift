import Logging
import NIOCore
import NIOSSL
import Synchronization

/// Finds the current primary through the sentinels, for a pool that opens a connection: asks each sentinel in
/// turn (the last one that answered first) with `SENTINEL GET-MASTER-ADDR-BY-NAME`, and checks the answer with
/// `ROLE` on the new connection, so a sentinel that has not yet seen a failover cannot send writes to a replica.
final class RedisSentinelLocator: Sendable {
    let sentinel: RedisSentinel
    /// The primary's credentials, database and TLS; its host is the master name.
    let primary: RedisEndpoint
    private let configuration: RedisClientConfiguration
    /// The client's TLS context (`rediss-sentinel://`: the sentinels and the primary share the settings).
    private let tlsContext: NIOSSLContext?
    private let preferred: Mutex<Int>

    init(sentinel: RedisSentinel, primary: RedisEndpoint, configuration: RedisClientConfiguration, tlsContext: NIOSSLContext?) {
        self.sentinel = sentinel
        self.primary = primary
        self.tlsContext = tlsContext
        // Sentinels are asked in plain RESP2 without the primary's credentials (with their own password, if any).
        var sentinelConfiguration = configuration
        sentinelConfiguration.protocolVersion = 2
        self.configuration = sentinelConfiguration
        self.preferred = Mutex(0)
    }

    /// What logs and the `node` metric label call this pool.
    var label: String { "sentinel master \(sentinel.masterName)" }

    /// The primary's address as the sentinels see it now.
    func locate(eventLoopGroup: any EventLoopGroup) async throws(RedisClientError) -> RedisEndpoint {
        let first = preferred.withLock { $0 }
        var failures: [String] = []
        for offset in 0..<sentinel.sentinels.count {
            let index = (first + offset) % sentinel.sentinels.count
            let address = sentinel.sentinels[index]
            do throws(RedisClientError) {
                let connection = try await RedisConnection.connect(
                    to: address, configuration: configuration, eventLoopGroup: eventLoopGroup, tlsContext: tlsContext)
                defer { connection.close() }
                let reply = try await connection.send(
                    RedisCommand("SENTINEL", ["GET-MASTER-ADDR-BY-NAME", RedisArgument(sentinel.masterName)]))
                if case .error(let message) = reply { throw .server(message) }
                guard let fields = reply.elements else {
                    // A null reply: this sentinel monitors no primary of that name.
                    throw .invalidConfiguration("sentinel \(address) does not monitor a master named '\(sentinel.masterName)'")
                }
                guard fields.count == 2, let host = fields[0].string, let port = fields[1].string.flatMap({ Int($0) }) else {
                    throw .unexpectedReply("SENTINEL GET-MASTER-ADDR-BY-NAME: \(reply)")
                }
                preferred.withLock { $0 = index }
                var located = primary
                located.host = host
                located.port = port
                return located
            } catch {
                failures.append("\(address): \(error)")
            }
        }
        throw .connectionFailed("no sentinel located master '\(sentinel.masterName)' (\(failures.joined(separator: "; ")))")
    }

    /// Subscribes to `+switch-master` on a sentinel (the next one when its connection fails or closes; RESP3, so
    /// the messages arrive as pushes) and calls `onSwitch` whenever the sentinels announce a new primary for this
    /// master: the pool can leave the old one at once instead of at its next poll. Returns when cancelled.
    func watchSwitches(eventLoopGroup: any EventLoopGroup, onSwitch: @escaping @Sendable () -> Void) async {
        var subscriber = configuration
        subscriber.protocolVersion = 3
        let masterName = sentinel.masterName
        var index = preferred.withLock { $0 }
        // A sentinel that refuses the subscription (no RESP3 before Redis 6, ACLs without channel rights) would be
        // asked again every second forever: the pause doubles up to 30 s while no subscription holds.
        var pause = Duration.seconds(1)
        while !Task.isCancelled {
            let address = sentinel.sentinels[index % sentinel.sentinels.count]
            index += 1
            do throws(RedisClientError) {
                let connection = try await RedisConnection.connect(
                    to: address, configuration: subscriber, eventLoopGroup: eventLoopGroup, tlsContext: tlsContext,
                    onPush: { push in
                        // > message +switch-master "<master> <old ip> <old port> <new ip> <new port>"
                        guard let items = push.elements, items.count == 3, items[0].string == "message",
                            items[1].string == "+switch-master", items[2].string?.hasPrefix(masterName + " ") == true
                        else { return }
                        onSwitch()
                    })
                try await connection.subscribe(["+switch-master"])
                let subscribed = ContinuousClock.now
                await withTaskCancellationHandler {
                    try? await connection.closeFuture.get()
                } onCancel: {
                    connection.close()
                }
                // A refused SUBSCRIBE closes the connection at once (its error reply has no waiter).
                pause = ContinuousClock.now - subscribed > .seconds(10) ? .seconds(1) : min(pause * 2, .seconds(30))
            } catch {
                // This sentinel cannot be reached; the poll still runs. Try the next one after a pause.
                pause = min(pause * 2, .seconds(30))
            }
            try? await Task.sleep(for: pause)
        }
    }

    /// Fails unless `connection` reaches a primary (`ROLE` starts with `master`).
    static func requirePrimary(_ connection: RedisConnection) async throws(RedisClientError) {
        let reply = try await connection.send(RedisCommand("ROLE"))
        let role = reply.elements?.first?.string ?? "\(reply)"
        guard role == "master" else {
            throw .connectionFailed("\(connection.endpoint) is a \(role), not the master (a failover under way?)")
        }
    }
}
