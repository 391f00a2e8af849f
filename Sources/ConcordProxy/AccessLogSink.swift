#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOConcurrencyHelpers
import NIOCore

/// Where access log lines go: standard error, in whole-line chunks of about 4 KiB. A line costs formatting into a
/// shared buffer under a lock; the `write(2)` happens once per chunk (and on ``flush()``, which the server calls
/// every second and at shutdown), not once per line — through swift-log's stream handler a line cost ≈ 25 µs of CPU,
/// as much as proxying the request. Chunks of at most one line past 4,000 bytes keep lines whole even on a pipe
/// shared with the other log lines (writes up to `PIPE_BUF`, 4,096 bytes, are atomic there).
final class AccessLogSink: Sendable {
    private struct State {
        var buffer = ByteBuffer()
        /// The second the cached timestamp text is for, and the text (`2026-12-01T11:05:08Z`).
        var second = -1
        var stamp = ""
    }

    static let chunkBytes = 4_000
    private let state = NIOLockedValueBox(State())
    private let descriptor: CInt

    init(descriptor: CInt = STDERR_FILENO) {
        self.descriptor = descriptor
    }

    /// Appends one line: the timestamp, then what `body` writes (without the newline).
    func line(_ body: (inout ByteBuffer) -> Void) {
        let now = time(nil)
        let full = state.withLockedValue { state -> ByteBuffer? in
            if state.second != now {
                state.second = now
                state.stamp = Self.timestamp(now)
            }
            state.buffer.writeString(state.stamp)
            body(&state.buffer)
            state.buffer.writeInteger(UInt8(ascii: "\n"))
            guard state.buffer.readableBytes >= Self.chunkBytes else { return nil }
            defer { state.buffer = ByteBuffer() }
            return state.buffer
        }
        if let full { emit(full) }
    }

    /// Writes what is buffered.
    func flush() {
        let pending = state.withLockedValue { state -> ByteBuffer in
            defer { state.buffer = ByteBuffer() }
            return state.buffer
        }
        if pending.readableBytes > 0 { emit(pending) }
    }

    private func emit(_ bytes: ByteBuffer) {
        bytes.withUnsafeReadableBytes { pointer in
            var offset = 0
            while offset < pointer.count {
                let written = write(descriptor, pointer.baseAddress! + offset, pointer.count - offset)
                if written < 0 && errno == EINTR { continue }
                // A closed or broken log stream loses lines rather than stopping the proxy.
                guard written > 0 else { return }
                offset += written
            }
        }
    }

    /// `seconds` since the epoch as UTC ISO 8601 (`2026-12-01T11:05:08Z`).
    static func timestamp(_ seconds: time_t) -> String {
        var copy = seconds
        var parts = tm()
        gmtime_r(&copy, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))Z"
    }
}
