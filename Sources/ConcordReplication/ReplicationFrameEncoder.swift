import NIOCore

/// Writes each ``ReplicationMessage`` as one frame (see ``ReplicationFrameDecoder`` for the layout) and counts the
/// bytes it puts on the wire.
public struct ReplicationFrameEncoder: MessageToByteEncoder, Sendable {
    public typealias OutboundIn = ReplicationMessage

    let statistics: ReplicationStatistics?

    init(statistics: ReplicationStatistics? = nil) {
        self.statistics = statistics
    }

    public init() { self.init(statistics: nil) }

    public func encode(data: ReplicationMessage, out: inout ByteBuffer) throws {
        let before = out.readableBytes
        Self.encode(data, into: &out)
        statistics?.recordFrameSent(bytes: out.readableBytes - before)
    }

    /// Appends one frame for `message` to `buffer`.
    static func encode(_ message: ReplicationMessage, into buffer: inout ByteBuffer) {
        let lengthIndex = buffer.writerIndex
        buffer.writeInteger(UInt32(0))
        buffer.writeInteger(ReplicationMessage.protocolVersion)
        message.encodeBody(into: &buffer)
        let length = buffer.writerIndex - lengthIndex - ReplicationFrameDecoder.lengthBytes
        buffer.setInteger(UInt32(length), at: lengthIndex)
    }
}
