import NIOCore

/// One Redis command: its name and arguments as binary-safe strings, and which argument is the key that routes it
/// in a cluster. Build them with the static constructors (`.get("k")`, `.set("k", value, expiration: …)`).
public struct RedisCommand: Sendable, Hashable {
    /// The name followed by the arguments, as sent.
    public var arguments: [ByteBuffer]
    /// The key whose slot decides the cluster node; `nil` for keyless commands (sent to any node).
    public var routingKey: ByteBuffer?

    /// - Parameter keyIndex: which of `arguments` (0-based, after the name) is the routing key.
    public init(_ name: String, _ arguments: [RedisArgument] = [], keyIndex: Int? = nil) {
        var buffers = [ByteBuffer(string: name)]
        buffers.reserveCapacity(arguments.count + 1)
        for argument in arguments { buffers.append(argument.buffer) }
        self.arguments = buffers
        self.routingKey = keyIndex.map { arguments[$0].buffer }
    }

    /// Already-encoded arguments (name first), for builders on hot paths.
    init(buffers: [ByteBuffer], routingKey: ByteBuffer?) {
        self.arguments = buffers
        self.routingKey = routingKey
    }

    /// The command name (upper case as sent).
    public var name: String { String(buffer: arguments[0]) }
}

/// A command argument: text, bytes, or an integer (sent as decimal text).
public struct RedisArgument: Sendable, Hashable, ExpressibleByStringLiteral, ExpressibleByIntegerLiteral {
    public var buffer: ByteBuffer

    public init(_ buffer: ByteBuffer) { self.buffer = buffer }
    public init(_ text: String) { self.buffer = ByteBuffer(string: text) }
    public init(_ bytes: [UInt8]) { self.buffer = ByteBuffer(bytes: bytes) }
    public init(_ number: Int64) { self.buffer = ByteBuffer(string: String(number)) }
    public init(_ number: Int) { self.init(Int64(number)) }
    public init(stringLiteral value: String) { self.init(value) }
    public init(integerLiteral value: Int) { self.init(Int64(value)) }
}

/// How long a `SET`/`GETEX` key lives.
public enum RedisExpiration: Sendable, Hashable {
    case seconds(Int64)
    case milliseconds(Int64)
    /// `GETEX … PERSIST`: remove the expiry.
    case persist

    /// Milliseconds of `duration`, at least 1 (Redis rejects 0).
    public static func duration(_ duration: Duration) -> Self {
        let (seconds, attoseconds) = duration.components
        return .milliseconds(max(1, seconds * 1000 + attoseconds / 1_000_000_000_000_000))
    }

    fileprivate var arguments: [RedisArgument] {
        switch self {
        case .seconds(let value): ["EX", RedisArgument(value)]
        case .milliseconds(let value): ["PX", RedisArgument(value)]
        case .persist: ["PERSIST"]
        }
    }
}

/// `SET … NX` (only if absent) or `XX` (only if present).
public enum RedisSetCondition: String, Sendable, Hashable {
    case ifAbsent = "NX"
    case ifPresent = "XX"
}

extension RedisCommand {
    public static func ping() -> Self { Self("PING") }
    public static func auth(username: String?, password: String) -> Self {
        Self("AUTH", username.map { [RedisArgument($0), RedisArgument(password)] } ?? [RedisArgument(password)])
    }
    public static func select(database: Int) -> Self { Self("SELECT", [RedisArgument(database)]) }
    public static func asking() -> Self { Self("ASKING") }
    public static func clusterSlots() -> Self { Self("CLUSTER", ["SLOTS"]) }
    public static func clusterShards() -> Self { Self("CLUSTER", ["SHARDS"]) }

    public static func get(_ key: RedisArgument) -> Self { Self("GET", [key], keyIndex: 0) }

    public static func getRange(_ key: RedisArgument, start: Int, end: Int) -> Self {
        Self("GETRANGE", [key, RedisArgument(start), RedisArgument(end)], keyIndex: 0)
    }

    /// `SET key value [EX|PX n] [NX|XX]`; the reply is `OK`, or null when the condition did not hold.
    public static func set(
        _ key: RedisArgument, _ value: RedisArgument, expiration: RedisExpiration? = nil,
        condition: RedisSetCondition? = nil
    ) -> Self {
        var arguments = [key, value]
        if let expiration, expiration != .persist { arguments += expiration.arguments }
        if let condition { arguments.append(RedisArgument(condition.rawValue)) }
        return Self("SET", arguments, keyIndex: 0)
    }

    /// `GETEX key [EX|PX n|PERSIST]`: the value, changing its expiry.
    public static func getex(_ key: RedisArgument, expiration: RedisExpiration? = nil) -> Self {
        Self("GETEX", [key] + (expiration?.arguments ?? []), keyIndex: 0)
    }

    public static func del(_ key: RedisArgument) -> Self { Self("DEL", [key], keyIndex: 0) }
    public static func exists(_ key: RedisArgument) -> Self { Self("EXISTS", [key], keyIndex: 0) }
    public static func pexpire(_ key: RedisArgument, milliseconds: Int64) -> Self {
        Self("PEXPIRE", [key, RedisArgument(milliseconds)], keyIndex: 0)
    }
    public static func pttl(_ key: RedisArgument) -> Self { Self("PTTL", [key], keyIndex: 0) }

    public static func sadd(_ key: RedisArgument, _ members: [RedisArgument]) -> Self {
        Self("SADD", [key] + members, keyIndex: 0)
    }
    public static func srem(_ key: RedisArgument, _ members: [RedisArgument]) -> Self {
        Self("SREM", [key] + members, keyIndex: 0)
    }
    public static func smembers(_ key: RedisArgument) -> Self { Self("SMEMBERS", [key], keyIndex: 0) }

    public static func scriptLoad(_ source: String) -> Self { Self("SCRIPT", ["LOAD", RedisArgument(source)]) }

    public static func evalsha(_ sha: String, keys: [RedisArgument], arguments: [RedisArgument]) -> Self {
        evalsha(sha: ByteBuffer(string: sha), keys: keys, arguments: arguments)
    }

    private static let evalshaName = ByteBuffer(string: "EVALSHA")
    private static let smallCounts = (0...9).map { ByteBuffer(string: String($0)) }

    /// `EVALSHA` built without re-encoding its name, SHA or key count and without intermediate arrays: a session
    /// save is one of these, and at concurrency 1 every allocation adds to the round trip.
    static func evalsha(sha: ByteBuffer, keys: [RedisArgument], arguments: [RedisArgument]) -> Self {
        var buffers: [ByteBuffer] = []
        buffers.reserveCapacity(3 + keys.count + arguments.count)
        buffers.append(evalshaName)
        buffers.append(sha)
        buffers.append(keys.count < smallCounts.count ? smallCounts[keys.count] : ByteBuffer(string: String(keys.count)))
        for key in keys { buffers.append(key.buffer) }
        for argument in arguments { buffers.append(argument.buffer) }
        return RedisCommand(buffers: buffers, routingKey: keys.first?.buffer)
    }
}
