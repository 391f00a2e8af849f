import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// A connect that failed on this machine — out of file descriptors (`EMFILE`: the process's limit; `ENFILE`: the
/// system's), socket buffers or memory (`ENOBUFS`, `ENOMEM`) — not at the backend. (`EADDRNOTAVAIL` is left out: it
/// is also what an address this host cannot reach at all gives, e.g. an IPv6 backend without IPv6, and such a backend
/// must go down.)
/// It says nothing about the backend: it is no passive health failure (before 2026-12-02 a proxy out of descriptors
/// marked every healthy backend down and went on answering 503 after the descriptors were back), and moving the
/// request to the key's next node would fail the same way. The client gets 503; ``LocalResourceAlarm`` tells the
/// operator.
public struct LocalResourceFailure: Error, CustomStringConvertible {
    public let errnoCode: Int32

    /// The local failure inside `error` (NIO's `IOError`, or the first of a `NIOConnectionError`'s attempts), if any.
    public init?(_ error: any Error) {
        let code: Int32
        switch error {
        case let error as IOError: code = error.errnoCode
        case let error as NIOConnectionError:
            guard let first = error.connectionErrors.first, let inner = LocalResourceFailure(first.error) else { return nil }
            code = inner.errnoCode
        default: return nil
        }
        guard [EMFILE, ENFILE, ENOBUFS, ENOMEM].contains(code) else { return nil }
        errnoCode = code
    }

    public var description: String {
        switch errnoCode {
        case EMFILE:
            "out of file descriptors (EMFILE: this process's limit, \(OpenFileLimit.current.map(String.init) ?? "unknown")); raise it "
                + "(ulimit -n, systemd LimitNOFILE=)"
        case ENFILE: "out of file descriptors (ENFILE: the system's limit, fs.file-max)"
        default: "out of memory for sockets (\(errnoCode == ENOBUFS ? "ENOBUFS" : "ENOMEM"))"
        }
    }
}
