import ConcordSessions
import Hummingbird

/// A request context that carries a session: all ``ConcordSessionMiddleware`` asks of an app's context.
///
/// Handlers read and change `context.session` the same way whatever strategy is configured.
public protocol ConcordSessionRequestContext<Session>: RequestContext {
    associatedtype Session: SessionValue
    /// The request's session (filled by ``ConcordSessionMiddleware`` before the handler runs).
    var session: SessionHandle<Session> { get }
}

/// A ready-made context with a session, for apps that need nothing else in theirs.
public struct ConcordRequestContext<Session: SessionValue>: ConcordSessionRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let session: SessionHandle<Session>

    public init(source: Source) {
        self.coreContext = .init(source: source)
        self.session = SessionHandle()
    }
}
