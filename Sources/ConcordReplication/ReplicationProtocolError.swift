/// Why a replication frame or a peer's conversation was rejected. The connection to that peer is closed.
public struct ReplicationProtocolError: Error, Sendable, Hashable, CustomStringConvertible {
    private enum Base: Sendable, Hashable {
        case frameTooLarge(length: Int, limit: Int)
        case frameTooShort(length: Int)
        case unsupportedVersion(UInt8)
        case unknownMessageType(UInt8)
        case malformed(String)
        case unexpectedMessage(String)
    }

    private let base: Base
    private init(_ base: Base) { self.base = base }

    /// A frame announced more bytes than ``ReplicationConfiguration/maximumFrameBytes`` allows.
    static func frameTooLarge(length: Int, limit: Int) -> Self { Self(.frameTooLarge(length: length, limit: limit)) }
    /// A frame too short to hold its version and type bytes.
    static func frameTooShort(length: Int) -> Self { Self(.frameTooShort(length: length)) }
    /// A frame from a protocol version this node does not speak.
    static func unsupportedVersion(_ version: UInt8) -> Self { Self(.unsupportedVersion(version)) }
    /// A frame whose type byte names no message.
    static func unknownMessageType(_ type: UInt8) -> Self { Self(.unknownMessageType(type)) }
    /// A frame whose body does not parse (truncated field, bad UTF-8, trailing bytes).
    static func malformed(_ reason: String) -> Self { Self(.malformed(reason)) }
    /// A well-formed message that is not allowed at this point of the conversation.
    static func unexpectedMessage(_ reason: String) -> Self { Self(.unexpectedMessage(reason)) }

    public var description: String {
        switch base {
        case .frameTooLarge(let length, let limit): "replication frame too large: \(length) bytes, the limit is \(limit)"
        case .frameTooShort(let length): "replication frame too short: \(length) bytes"
        case .unsupportedVersion(let version): "unsupported replication protocol version \(version)"
        case .unknownMessageType(let type): "unknown replication message type \(type)"
        case .malformed(let reason): "malformed replication frame: \(reason)"
        case .unexpectedMessage(let reason): "unexpected replication message: \(reason)"
        }
    }
}
