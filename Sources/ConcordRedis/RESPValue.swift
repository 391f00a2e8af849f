import NIOCore

/// One RESP2 or RESP3 value, as Redis sends it.
///
/// RESP2 values are simple strings, errors, integers, bulk strings and arrays (each with a null form);
/// RESP3 adds null, doubles, booleans, big numbers, verbatim strings, maps, sets, attributes and pushes.
public indirect enum RESPValue: Sendable, Hashable {
    /// `+OK\r\n`
    case simpleString(String)
    /// `-ERR message\r\n` (also RESP3 blob errors `!`).
    case error(String)
    /// `:42\r\n`
    case integer(Int64)
    /// `$3\r\nfoo\r\n`; binary safe.
    case bulkString(ByteBuffer)
    /// `*2\r\n…`
    case array([RESPValue])
    /// RESP2 `$-1` / `*-1`, RESP3 `_`.
    case null
    /// RESP3 `,3.14`
    case double(Double)
    /// RESP3 `#t` / `#f`
    case boolean(Bool)
    /// RESP3 `(` big number, kept as its decimal text.
    case bigNumber(String)
    /// RESP3 `=` verbatim string: the three-letter format (`txt`, `mkd`) and the text.
    case verbatimString(format: String, text: ByteBuffer)
    /// RESP3 `%` map, in wire order.
    case map([RESPMapEntry])
    /// RESP3 `~` set, in wire order.
    case set([RESPValue])
    /// RESP3 `>` out-of-band push (pub/sub, client-side caching invalidation).
    case push([RESPValue])

    /// The bytes of a bulk, simple or verbatim string; `nil` for other values.
    public var bytes: [UInt8]? {
        switch self {
        case .bulkString(let buffer): Array(buffer.readableBytesView)
        case .simpleString(let text): Array(text.utf8)
        case .verbatimString(_, let text): Array(text.readableBytesView)
        default: nil
        }
    }

    /// The value as UTF-8 text (bulk, simple, verbatim strings, integers); `nil` otherwise.
    public var string: String? {
        switch self {
        case .bulkString(let buffer): String(buffer: buffer)
        case .simpleString(let text): text
        case .verbatimString(_, let text): String(buffer: text)
        case .integer(let value): String(value)
        default: nil
        }
    }

    /// The value as an integer (integers and decimal strings); `nil` otherwise.
    public var int: Int64? {
        switch self {
        case .integer(let value): value
        case .bulkString, .simpleString: string.flatMap { Int64($0) }
        default: nil
        }
    }

    /// The elements of an array, set or push; `nil` otherwise.
    public var elements: [RESPValue]? {
        switch self {
        case .array(let values), .set(let values), .push(let values): values
        default: nil
        }
    }

    public var isNull: Bool { if case .null = self { true } else { false } }
}

/// One key/value pair of a RESP3 map.
public struct RESPMapEntry: Sendable, Hashable {
    public var key: RESPValue
    public var value: RESPValue

    public init(key: RESPValue, value: RESPValue) {
        self.key = key
        self.value = value
    }
}
