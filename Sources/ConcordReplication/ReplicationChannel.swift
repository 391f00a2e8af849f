import NIOCore

/// The channel pipeline every replication connection uses, inbound or outbound.
enum ReplicationChannel {
    /// Adds the frame codec (behind a buffer cap) and wraps the channel for async use.
    /// Must run on the channel's event loop.
    ///
    /// - Parameter accepted: the channel is one the listener accepted. Those are wrapped so that one dropped
    ///   before anyone ran `executeThenClose` on it is closed on deinit instead of trapping: NIO's async `bind`
    ///   can drop a connection it accepted while the node stops (its accept sequence was cancelled, or the
    ///   listener closed while the child was being set up), and a wrapper that must be finished explicitly then
    ///   traps with "Deinited NIOAsyncWriter without calling finish()" (apple/swift-nio#2637; it crashed a CI
    ///   run). `executeThenClose` still closes every connection that is served.
    static func configure(
        _ channel: any Channel,
        configuration: ReplicationConfiguration,
        statistics: ReplicationStatistics,
        accepted: Bool = false
    ) throws -> NIOAsyncChannel<ReplicationMessage, ReplicationMessage> {
        let decoder = ReplicationFrameDecoder(maximumFrameBytes: configuration.maximumFrameBytes)
        try channel.pipeline.syncOperations.addHandlers(
            ByteToMessageHandler(
                decoder, maximumBufferSize: configuration.maximumFrameBytes + ReplicationFrameDecoder.lengthBytes),
            MessageToByteHandler(ReplicationFrameEncoder(statistics: statistics))
        )
        let asyncConfiguration = NIOAsyncChannel<ReplicationMessage, ReplicationMessage>.Configuration(
            backPressureStrategy: .init(lowWatermark: 4, highWatermark: 64))
        if accepted {
            try channel.pipeline.syncOperations.addHandler(HelloDeadlineHandler(timeout: TimeAmount(configuration.helloTimeout)))
            return try wrapClosingOnDeinit(channel, configuration: asyncConfiguration)
        }
        return try NIOAsyncChannel(wrappingChannelSynchronously: channel, configuration: asyncConfiguration)
    }

    /// NIO marks this wrapper deprecated because it relies on deinit for teardown; here that is the point (see
    /// `accepted` above). The one deprecation warning of the build comes from this line.
    private static func wrapClosingOnDeinit(
        _ channel: any Channel,
        configuration: NIOAsyncChannel<ReplicationMessage, ReplicationMessage>.Configuration
    ) throws -> NIOAsyncChannel<ReplicationMessage, ReplicationMessage> {
        try NIOAsyncChannel(synchronouslyWrapping: channel, configuration: configuration)
    }
}
