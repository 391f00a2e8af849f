import NIOCore

/// Splits the byte stream from a peer into ``ReplicationMessage``s.
///
/// A frame is `length: UInt32` (big-endian, counting the bytes after it), `version: UInt8`, `type: UInt8`, body.
/// A frame longer than `maximumFrameBytes` is refused as soon as its length is read, before any of it is buffered,
/// and a frame that does not parse throws; either error closes the connection (never the node).
/// Install behind `ByteToMessageHandler(_:maximumBufferSize:)` so a peer cannot make the buffer grow without bound.
public struct ReplicationFrameDecoder: ByteToMessageDecoder, Sendable {
    public typealias InboundOut = ReplicationMessage

    /// Bytes in the length prefix.
    static let lengthBytes = 4
    /// The version and type bytes every frame has.
    static let headerBytes = 2

    public let maximumFrameBytes: Int

    public init(maximumFrameBytes: Int) {
        self.maximumFrameBytes = maximumFrameBytes
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let message = try decodeFrame(&buffer) else { return .needMoreData }
        context.fireChannelRead(Self.wrapInboundOut(message))
        return .continue
    }

    public mutating func decodeLast(
        context: ChannelHandlerContext,
        buffer: inout ByteBuffer,
        seenEOF: Bool
    ) throws -> DecodingState {
        // A partial frame at end of stream is dropped: the peer went away mid-write and will resend on reconnect.
        try decode(context: context, buffer: &buffer)
    }

    /// The next whole frame's message, or `nil` until the frame has fully arrived.
    func decodeFrame(_ buffer: inout ByteBuffer) throws(ReplicationProtocolError) -> ReplicationMessage? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return nil }
        let frameLength = Int(length)
        guard frameLength <= maximumFrameBytes else {
            throw .frameTooLarge(length: frameLength, limit: maximumFrameBytes)
        }
        guard frameLength >= Self.headerBytes else { throw .frameTooShort(length: frameLength) }
        guard buffer.readableBytes >= Self.lengthBytes + frameLength else { return nil }
        buffer.moveReaderIndex(forwardBy: Self.lengthBytes)
        var frame = buffer.readSlice(length: frameLength)!
        let version = frame.readInteger(as: UInt8.self)!
        guard version == ReplicationMessage.protocolVersion else { throw .unsupportedVersion(version) }
        return try ReplicationMessage.decodeBody(&frame)
    }
}
