#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore

/// Why the proxy could not start or apply a change: bad configuration, an unknown backend, a failed bind.
/// Never a crash: every user-supplied setting is validated and reported with this error.
public struct ProxyError: Error, Sendable, Hashable, CustomStringConvertible {
    private enum Base: Sendable, Hashable {
        case invalidAddress(String, reason: String)
        case invalidSetting(String)
        case unknownBackend(String)
        case duplicateBackend(String)
        case configurationFile(path: String, reason: String)
        case cannotListen(String, role: String, reason: String)
    }

    private let base: Base
    private init(_ base: Base) { self.base = base }

    /// A `HOST:PORT` that does not parse or resolve.
    public static func invalidAddress(_ text: String, reason: String) -> Self { Self(.invalidAddress(text, reason: reason)) }
    /// A setting out of range or in the wrong form (the message names it).
    public static func invalidSetting(_ message: String) -> Self { Self(.invalidSetting(message)) }
    /// An admin request named a backend that is not in the pool.
    public static func unknownBackend(_ id: String) -> Self { Self(.unknownBackend(id)) }
    /// A backend was added twice.
    public static func duplicateBackend(_ id: String) -> Self { Self(.duplicateBackend(id)) }
    /// The YAML configuration file could not be read or decoded.
    public static func configurationFile(path: String, reason: String) -> Self {
        Self(.configurationFile(path: path, reason: reason))
    }

    /// A listener could not be bound (`role`: "client listener" or "admin API"), e.g. the port is taken.
    public static func cannotListen(on address: HostPort, role: String, error: any Error) -> Self {
        let reason = (error as? IOError).map { String(cString: strerror($0.errnoCode)).lowercased() } ?? "\(error)"
        return Self(.cannotListen(address.description, role: role, reason: reason))
    }

    public var description: String {
        switch base {
        case .invalidAddress(let text, let reason): "invalid address '\(text)': \(reason) (expected HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080)"
        case .invalidSetting(let message): message
        case .unknownBackend(let id): "no backend \(id) in the pool"
        case .duplicateBackend(let id): "backend \(id) is listed twice (or is already a backend)"
        case .configurationFile(let path, let reason): "configuration file \(path): \(reason)"
        case .cannotListen(let address, let role, let reason): "cannot listen on \(address) (\(role)): \(reason)"
        }
    }

    /// The admin API's status for this error (the mapping to HTTP happens only at that edge).
    var adminStatusCode: Int {
        switch base {
        case .unknownBackend: 404
        case .duplicateBackend: 409
        default: 400
        }
    }
}
