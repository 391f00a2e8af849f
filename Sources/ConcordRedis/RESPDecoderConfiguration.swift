/// The limits the RESP decoder enforces, so a broken or hostile server cannot make a client allocate without bound.
///
/// Defaults (chosen for session payloads of up to a few MiB):
/// - `maximumBulkLength`: 16 MiB per bulk/verbatim/blob-error string.
/// - `maximumAggregateLength`: 1,048,576 elements per array, set, map (pairs) or push.
/// - `maximumNestingDepth`: 32 levels of aggregates inside aggregates.
/// - `maximumLineLength`: 64 KiB for a simple string, error, integer or length line.
/// - `maximumBufferSize`: 32 MiB of unparsed bytes held for one incomplete reply.
public struct RESPDecoderConfiguration: Sendable, Hashable {
    public var maximumBulkLength: Int
    public var maximumAggregateLength: Int
    public var maximumNestingDepth: Int
    public var maximumLineLength: Int
    public var maximumBufferSize: Int

    public init(
        maximumBulkLength: Int = 16 << 20,
        maximumAggregateLength: Int = 1 << 20,
        maximumNestingDepth: Int = 32,
        maximumLineLength: Int = 64 << 10,
        maximumBufferSize: Int = 32 << 20
    ) {
        self.maximumBulkLength = maximumBulkLength
        self.maximumAggregateLength = maximumAggregateLength
        self.maximumNestingDepth = maximumNestingDepth
        self.maximumLineLength = maximumLineLength
        self.maximumBufferSize = maximumBufferSize
    }
}
