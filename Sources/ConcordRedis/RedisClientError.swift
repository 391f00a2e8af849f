import ConcordNetworking
import NIOCore

/// Why a Redis command failed. A struct over a private enum so new cases do not break users.
///
/// Everything except ``isServerError`` replies means "Redis could not be reached or did not answer in time":
/// callers (the session store) turn those into `SessionStoreError.unavailable`.
public struct RedisClientError: Error, Sendable, Hashable, CustomStringConvertible {
    private enum Base: Sendable, Hashable {
        case connectionFailed(String)
        case connectionClosed
        case connectionLost(String)
        case timeout(String)
        case backingOff(String)
        case protocolViolation(String)
        case server(String)
        case unexpectedReply(String)
        case tooManyRedirections(Int)
        case invalidConfiguration(String)
        case localResources(errno: Int32, endpoint: String)
        case shutDown
    }

    private let base: Base
    /// The command never left this client — no connection could be had (refused, backoff, a failed handshake, shut
    /// down), or its connection had closed before it was written — so it had no effect on Redis and may be sent
    /// again. False when it may have reached Redis: a timeout or a connection lost after it was written, or a reply.
    public private(set) var wasNotSent = false
    private init(_ base: Base) { self.base = base }

    /// Opening a TCP connection (or its AUTH/SELECT handshake) failed.
    public static func connectionFailed(_ reason: String) -> Self { Self(.connectionFailed(reason)) }
    /// The connection closed while the command was pending.
    public static let connectionClosed = Self(.connectionClosed)
    /// The connection failed (reset, a TLS alert, …) while the command was pending.
    public static func connectionLost(_ reason: String) -> Self { Self(.connectionLost(reason)) }
    /// The connect or the command took longer than its configured timeout.
    public static func timeout(_ what: String) -> Self { Self(.timeout(what)) }
    /// The last reconnect failed; the client waits (backoff) before trying again and fails fast meanwhile.
    public static func backingOff(_ lastError: String) -> Self { Self(.backingOff(lastError)) }
    /// The server sent bytes that are not valid RESP or exceed the decoder's limits.
    public static func protocolViolation(_ reason: String) -> Self { Self(.protocolViolation(reason)) }
    /// The server answered with an error reply (`-ERR …`, `-WRONGTYPE …`).
    public static func server(_ message: String) -> Self { Self(.server(message)) }
    /// The server answered with a reply of an unexpected shape for the command.
    public static func unexpectedReply(_ what: String) -> Self { Self(.unexpectedReply(what)) }
    /// A cluster kept redirecting (MOVED/ASK) more often than allowed.
    public static func tooManyRedirections(_ count: Int) -> Self { Self(.tooManyRedirections(count)) }
    /// A URL or configuration value is not usable.
    public static func invalidConfiguration(_ reason: String) -> Self { Self(.invalidConfiguration(reason)) }
    /// The client was shut down.
    public static let shutDown = Self(.shutDown)
    /// Opening a connection to `endpoint` failed in this process: out of file descriptors or socket memory
    /// (``LocalResourceFailure``). Redis was not reached, and this says nothing about its health.
    public static func localResources(_ failure: LocalResourceFailure, endpoint: String) -> Self {
        Self(.localResources(errno: failure.errnoCode, endpoint: endpoint))
    }

    /// The server replied with an error (the command reached Redis).
    public var isServerError: Bool { if case .server = base { true } else { false } }
    /// The error reply's text, e.g. `NOSCRIPT No matching script.`
    public var serverMessage: String? { if case .server(let message) = base { message } else { nil } }
    public var isTimeout: Bool { if case .timeout = base { true } else { false } }
    /// The command failed fast because the connection is waiting out its reconnect backoff.
    public var isBackingOff: Bool { if case .backingOff = base { true } else { false } }
    public var isInvalidConfiguration: Bool { if case .invalidConfiguration = base { true } else { false } }
    /// The failure was this process's, not Redis's (``localResources(_:endpoint:)``).
    public var localResourceFailure: LocalResourceFailure? {
        guard case .localResources(let code, _) = base else { return nil }
        return LocalResourceFailure(IOError(errnoCode: code, reason: "connect"))
    }

    /// The same error, known not to have been sent (``wasNotSent``).
    func notSent() -> Self {
        var copy = self
        copy.wasNotSent = true
        return copy
    }

    /// The error as the failure of a connect to `context` (the endpoint): a connection that closed or failed
    /// while connecting is a failed connect; others unchanged.
    func connectFailure(context: String) -> Self {
        switch base {
        case .connectionFailed(let reason), .connectionLost(let reason):
            .connectionFailed(reason.hasPrefix(context) ? reason : "\(context): \(reason)")
        case .connectionClosed: .connectionFailed("\(context): connection closed")
        default: self
        }
    }

    /// The error's kind as the `kind` dimension of `concord_redis_command_failures_total`.
    var metricKind: RedisFailureKind {
        switch base {
        case .timeout: .timeout
        case .connectionFailed: .connectionFailed
        case .connectionClosed, .connectionLost: .connectionClosed
        case .backingOff: .backingOff
        case .localResources: .localResources
        case .server: .serverError
        case .protocolViolation: .protocolError
        case .unexpectedReply, .tooManyRedirections, .invalidConfiguration, .shutDown: .other
        }
    }

    public var description: String {
        switch base {
        case .connectionFailed(let reason): "redis: connection failed: \(reason)"
        case .connectionClosed: "redis: connection closed"
        case .connectionLost(let reason): "redis: connection lost: \(reason)"
        case .timeout(let what): "redis: timed out: \(what)"
        case .backingOff(let lastError): "redis: reconnecting after failure (\(lastError))"
        case .protocolViolation(let reason): "redis: protocol violation: \(reason)"
        case .server(let message): "redis: server replied: \(message)"
        case .unexpectedReply(let what): "redis: unexpected reply: \(what)"
        case .tooManyRedirections(let count): "redis: more than \(count) cluster redirections"
        case .invalidConfiguration(let reason): "redis: invalid configuration: \(reason)"
        case .shutDown: "redis: client shut down"
        case .localResources(let code, let endpoint):
            "redis: connect to \(endpoint) failed in this process, not at Redis: "
                + (LocalResourceFailure(IOError(errnoCode: code, reason: "connect")).map { "\($0)" } ?? "errno \(code)")
        }
    }
}
