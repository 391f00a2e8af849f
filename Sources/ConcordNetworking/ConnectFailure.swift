import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// A failed connect said the way an operator reads it: `connection refused (ECONNREFUSED)`, `timed out after 2 s`.
/// NIO's own text for a refused connect is `Connection errors: SingleConnectionFailure(target: [IPv4]127.0.0.1/
/// 127.0.0.1:9001, error: connection reset (error set): Connection refused (errno: 111))` — it calls a refusal a
/// reset, and its nested parentheses read as unbalanced in a log line.
public enum ConnectFailure {
    public static func describe(_ error: any Error) -> String {
        switch error {
        case let error as NIOConnectionError:
            if let dns = error.dnsAError ?? error.dnsAAAAError { return "name not resolved (\(dns))" }
            guard let first = error.connectionErrors.first else { return "\(error)" }
            return describe(first.error)
        case let error as IOError:
            let name = errnoName(error.errnoCode).map { " (\($0))" } ?? " (errno \(error.errnoCode))"
            return String(cString: strerror(error.errnoCode)).lowercased() + name
        case let error as ChannelError:
            if case .connectTimeout(let after) = error { return "timed out after \(seconds(after))" }
            return "\(error)"
        default:
            return "\(error)"
        }
    }

    private static func seconds(_ amount: TimeAmount) -> String {
        let milliseconds = amount.nanoseconds / 1_000_000
        return milliseconds % 1000 == 0 ? "\(milliseconds / 1000) s" : "\(milliseconds) ms"
    }

    private static func errnoName(_ code: Int32) -> String? {
        switch code {
        case ECONNREFUSED: "ECONNREFUSED"
        case ECONNRESET: "ECONNRESET"
        case ETIMEDOUT: "ETIMEDOUT"
        case EHOSTUNREACH: "EHOSTUNREACH"
        case ENETUNREACH: "ENETUNREACH"
        case EADDRNOTAVAIL: "EADDRNOTAVAIL"
        case EMFILE: "EMFILE"
        case ENFILE: "ENFILE"
        default: nil
        }
    }
}
