import NIOCore
import Synchronization

/// A Lua script run with `EVALSHA`. Its SHA-1 is learned from `SCRIPT LOAD` on first use and kept; a server that
/// does not know it (restarted, flushed, another cluster node) answers `NOSCRIPT`, and the client loads it there
/// and retries once.
public final class RedisScript: Sendable {
    public let source: String
    /// The digest as `SCRIPT LOAD` returned it, kept encoded for `EVALSHA`.
    private let sha: Mutex<ByteBuffer?>

    public init(_ source: String) {
        self.source = source
        self.sha = Mutex(nil)
    }

    var knownSHA: ByteBuffer? { sha.withLock { $0 } }
    func remember(sha newSHA: String) { sha.withLock { $0 = ByteBuffer(string: newSHA) } }
}

extension RedisClient {
    /// Runs `script` with `keys` and `arguments` (`EVALSHA`). The script is loaded (`SCRIPT LOAD`) on the very
    /// connection that answered `NOSCRIPT`, so in a cluster it reaches the node that owns the keys, even mid-ASK.
    public func run(_ script: RedisScript, keys: [RedisArgument], arguments: [RedisArgument]) async throws(RedisClientError)
        -> RESPValue
    {
        try await execute(routingKey: keys.first?.buffer) { connection, asking throws(RedisClientError) in
            func evaluate(_ sha: ByteBuffer) async throws(RedisClientError) -> RESPValue {
                let command = RedisCommand.evalsha(sha: sha, keys: keys, arguments: arguments)
                return asking ? try await connection.send([.asking(), command])[1] : try await connection.send(command)
            }
            if let sha = script.knownSHA {
                let reply = try await evaluate(sha)
                guard case .error(let message) = reply, message.hasPrefix("NOSCRIPT") else { return reply }
            }
            let loaded = try await connection.send(.scriptLoad(script.source))
            guard let sha = loaded.string else {
                if case .error = loaded { return loaded }
                throw .unexpectedReply("SCRIPT LOAD did not return a digest")
            }
            script.remember(sha: sha)
            return try await evaluate(ByteBuffer(string: sha))
        }
    }
}
