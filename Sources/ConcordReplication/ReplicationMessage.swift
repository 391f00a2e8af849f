import NIOCore

/// What nodes say to each other. Each message travels in one frame (see ``ReplicationFrameDecoder``).
///
/// A connection is one-way for writes: a node opens one connection to each peer, says ``hello(nodeID:)``, then sends
/// its writes and its requests on it; the peer answers requests on the same connection with ``response``.
public enum ReplicationMessage: Sendable, Hashable {
    /// The first message on a connection: who is calling.
    case hello(nodeID: String)
    /// The first message on a connection of a cluster with a shared secret: who is calling, and the proof that it
    /// knows the secret (``ReplicationHelloProof``).
    case provenHello(nodeID: String, issuedAtMilliseconds: UInt64, proof: [UInt8])
    /// Writes (saves, touches, tombstones) and hand-offs, applied last-writer-wins.
    case records([ReplicationRecord])
    /// "Send me every session I should hold" (all of them for `sync`, my share for `ring`): a state transfer.
    case stateRequest(requestID: UInt64)
    /// "Send me these sessions if you have them": a `ring` read-through.
    case fetchRequest(requestID: UInt64, ids: [String])
    /// "Send me the live sessions of this user that you hold": `ring`'s per-user listing.
    case userQuery(requestID: UInt64, userID: String)
    /// One chunk of the answer to a request; `isLast` ends it. `ready` says whether the sender has finished its own
    /// state transfer (a node that is still starting answers with what it has and `ready == false`).
    case response(requestID: UInt64, ready: Bool, records: [ReplicationRecord], isLast: Bool)
}

extension ReplicationMessage {
    /// The only protocol version this code speaks; a frame with another version closes the connection.
    static let protocolVersion: UInt8 = 1

    private enum Kind: UInt8 {
        case hello = 1
        case records = 2
        case stateRequest = 3
        case fetchRequest = 4
        case response = 5
        case userQuery = 6
        case provenHello = 7
    }

    /// Writes the frame body (type byte onwards) for this message.
    func encodeBody(into buffer: inout ByteBuffer) {
        switch self {
        case .hello(let nodeID):
            buffer.writeInteger(Kind.hello.rawValue)
            buffer.writeShortString(nodeID)
        case .provenHello(let nodeID, let issuedAt, let proof):
            buffer.writeInteger(Kind.provenHello.rawValue)
            buffer.writeShortString(nodeID)
            buffer.writeInteger(issuedAt)
            buffer.writeInteger(UInt8(proof.count))
            buffer.writeBytes(proof)
        case .records(let records):
            buffer.writeInteger(Kind.records.rawValue)
            buffer.writeRecords(records)
        case .stateRequest(let requestID):
            buffer.writeInteger(Kind.stateRequest.rawValue)
            buffer.writeInteger(requestID)
        case .fetchRequest(let requestID, let ids):
            buffer.writeInteger(Kind.fetchRequest.rawValue)
            buffer.writeInteger(requestID)
            buffer.writeInteger(UInt32(ids.count))
            for id in ids { buffer.writeShortString(id) }
        case .userQuery(let requestID, let userID):
            buffer.writeInteger(Kind.userQuery.rawValue)
            buffer.writeInteger(requestID)
            buffer.writeShortString(userID)
        case .response(let requestID, let ready, let records, let isLast):
            buffer.writeInteger(Kind.response.rawValue)
            buffer.writeInteger(requestID)
            buffer.writeInteger(UInt8((ready ? 1 : 0) | (isLast ? 2 : 0)))
            buffer.writeRecords(records)
        }
    }

    /// Reads a whole frame body (type byte onwards); every byte must be used.
    static func decodeBody(_ buffer: inout ByteBuffer) throws(ReplicationProtocolError) -> ReplicationMessage {
        guard let rawKind = buffer.readInteger(as: UInt8.self) else { throw .malformed("missing message type") }
        guard let kind = Kind(rawValue: rawKind) else { throw .unknownMessageType(rawKind) }
        let message: ReplicationMessage
        switch kind {
        case .hello:
            message = .hello(nodeID: try buffer.readShortStringOrThrow("node id"))
        case .provenHello:
            let nodeID = try buffer.readShortStringOrThrow("node id")
            let issuedAt: UInt64 = try buffer.readIntegerOrThrow("hello time")
            let length: UInt8 = try buffer.readIntegerOrThrow("proof length")
            guard let proof = buffer.readBytes(length: Int(length)) else { throw .malformed("proof shorter than its length") }
            message = .provenHello(nodeID: nodeID, issuedAtMilliseconds: issuedAt, proof: proof)
        case .records:
            message = .records(try buffer.readRecords())
        case .stateRequest:
            message = .stateRequest(requestID: try buffer.readIntegerOrThrow("request id"))
        case .fetchRequest:
            let requestID: UInt64 = try buffer.readIntegerOrThrow("request id")
            let count: UInt32 = try buffer.readIntegerOrThrow("id count")
            // Each id takes at least its 2-byte length, so a count the frame cannot hold is rejected before allocating.
            guard Int(count) * 2 <= buffer.readableBytes else { throw .malformed("id count \(count) exceeds frame") }
            var ids: [String] = []
            ids.reserveCapacity(Int(count))
            for _ in 0..<count { ids.append(try buffer.readShortStringOrThrow("session id")) }
            message = .fetchRequest(requestID: requestID, ids: ids)
        case .userQuery:
            let requestID: UInt64 = try buffer.readIntegerOrThrow("request id")
            message = .userQuery(requestID: requestID, userID: try buffer.readShortStringOrThrow("user id"))
        case .response:
            let requestID: UInt64 = try buffer.readIntegerOrThrow("request id")
            let flags: UInt8 = try buffer.readIntegerOrThrow("response flags")
            guard flags & ~3 == 0 else { throw .malformed("unknown response flags \(flags)") }
            message = .response(
                requestID: requestID, ready: flags & 1 != 0, records: try buffer.readRecords(), isLast: flags & 2 != 0)
        }
        guard buffer.readableBytes == 0 else { throw .malformed("\(buffer.readableBytes) trailing bytes") }
        return message
    }
}

extension ByteBuffer {
    fileprivate mutating func writeShortString(_ string: String) {
        // Ids, node ids and user ids are short; longer ones are refused before they reach the wire.
        let utf8 = string.utf8
        precondition(utf8.count <= Int(UInt16.max), "replication string longer than 65535 bytes")
        writeInteger(UInt16(utf8.count))
        writeBytes(utf8)
    }

    fileprivate mutating func readShortStringOrThrow(_ what: String) throws(ReplicationProtocolError) -> String {
        let length: UInt16 = try readIntegerOrThrow("\(what) length")
        guard let bytes = readSlice(length: Int(length)) else { throw .malformed("truncated \(what)") }
        guard let string = String(validating: bytes.readableBytesView, as: UTF8.self) else {
            throw .malformed("\(what) is not UTF-8")
        }
        return string
    }

    fileprivate mutating func readIntegerOrThrow<T: FixedWidthInteger>(
        _ what: String
    ) throws(ReplicationProtocolError) -> T {
        guard let value = readInteger(as: T.self) else { throw .malformed("truncated \(what)") }
        return value
    }

    private static let tombstoneFlag: UInt8 = 1
    private static let userIDFlag: UInt8 = 2
    /// flags, id length, incarnation, version, timestamp, origin length, expiry.
    private static let minimumRecordBytes = 1 + 2 + 8 + 8 + 8 + 2 + 8

    fileprivate mutating func writeRecords(_ records: [ReplicationRecord]) {
        writeInteger(UInt32(records.count))
        for record in records {
            var flags: UInt8 = 0
            if record.payload == nil { flags |= Self.tombstoneFlag }
            if record.userID != nil { flags |= Self.userIDFlag }
            writeInteger(flags)
            writeShortString(record.id)
            writeInteger(record.incarnation)
            writeInteger(record.version)
            writeInteger(record.timestamp)
            writeShortString(record.origin)
            writeInteger(record.expiresAt)
            if let userID = record.userID { writeShortString(userID) }
            if let payload = record.payload {
                writeInteger(UInt32(payload.count))
                writeBytes(payload)
            }
        }
    }

    fileprivate mutating func readRecords() throws(ReplicationProtocolError) -> [ReplicationRecord] {
        let count: UInt32 = try readIntegerOrThrow("record count")
        guard Int(count) * Self.minimumRecordBytes <= readableBytes else {
            throw .malformed("record count \(count) exceeds frame")
        }
        var records: [ReplicationRecord] = []
        records.reserveCapacity(Int(count))
        for _ in 0..<count {
            let flags: UInt8 = try readIntegerOrThrow("record flags")
            guard flags & ~(Self.tombstoneFlag | Self.userIDFlag) == 0 else {
                throw .malformed("unknown record flags \(flags)")
            }
            let id = try readShortStringOrThrow("session id")
            let incarnation: UInt64 = try readIntegerOrThrow("incarnation")
            let version: UInt64 = try readIntegerOrThrow("version")
            let timestamp: UInt64 = try readIntegerOrThrow("timestamp")
            let origin = try readShortStringOrThrow("origin")
            let expiresAt: UInt64 = try readIntegerOrThrow("expiry")
            let userID = flags & Self.userIDFlag != 0 ? try readShortStringOrThrow("user id") : nil
            var payload: [UInt8]? = nil
            if flags & Self.tombstoneFlag == 0 {
                let length: UInt32 = try readIntegerOrThrow("payload length")
                guard let bytes = readBytes(length: Int(length)) else { throw .malformed("truncated payload") }
                payload = bytes
            }
            records.append(
                ReplicationRecord(
                    id: id, incarnation: incarnation, version: version, timestamp: timestamp, origin: origin,
                    expiresAt: expiresAt, userID: userID, payload: payload))
        }
        return records
    }
}
