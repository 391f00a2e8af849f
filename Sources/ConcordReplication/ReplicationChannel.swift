import NIOCore

/// The channel pipeline every replication connection uses, inbound or outbound.
enum ReplicationChannel {
    /// Adds the frame codec (behind a buffer cap) and wraps the channel for async use.
    /// Must run on the channel's event loop.
    static func configure(
        _ channel: any Channel,
        configuration: ReplicationConfiguration,
        statistics: ReplicationStatistics
    ) throws -> NIOAsyncChannel<ReplicationMessage, ReplicationMessage> {
        let decoder = ReplicationFrameDecoder(maximumFrameBytes: configuration.maximumFrameBytes)
        try channel.pipeline.syncOperations.addHandlers(
            ByteToMessageHandler(
                decoder, maximumBufferSize: configuration.maximumFrameBytes + ReplicationFrameDecoder.lengthBytes),
            MessageToByteHandler(ReplicationFrameEncoder(statistics: statistics))
        )
        return try NIOAsyncChannel(
            wrappingChannelSynchronously: channel,
            configuration: .init(backPressureStrategy: .init(lowWatermark: 4, highWatermark: 64)))
    }
}
