/// Bounds on a message head that the framers enforce (``HTTPRequestFramer``, ``HTTPResponseFramer``): bodies are
/// streamed, so only heads are buffered.
struct HTTPHeadLimits: Sendable, Hashable {
    /// Largest start line (request or status line) + header section, blank line included.
    var maxHeadBytes: Int
    /// Most header fields in one head.
    var maxHeaderCount: Int
}

/// The errors both framers report the same way, so the field-section scan is written once
/// (``HTTPSyntax/scanFields(_:from:maxCount:_:)``, ``HTTPSyntax/headLength(_:from:limit:failing:)``).
protocol HTTPHeadError: Error {
    /// A field line without a colon, with a bad name or value, obsolete line folding, or a bare CR or LF.
    static var malformedHeader: Self { get }
    /// More than `limit` header fields.
    static func tooManyHeaders(limit: Int) -> Self
    /// The head did not end within `limit` bytes.
    static func headTooLarge(limit: Int) -> Self
}

extension HTTPRequestFramerError: HTTPHeadError {}
extension HTTPResponseFramerError: HTTPHeadError {}
