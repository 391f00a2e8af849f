import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Progress lines for long runs go to standard error, so standard output stays clean for tables and `--json`.
enum Progress {
    static func say(_ message: String) {
        write(message + "\n")
    }

    /// Writes `text` to standard error, ignoring failures: a closed pipe (`concord lab 2>&1 | head`) or a full
    /// disk must not end the run. `FileHandle.write(_:)` traps on them (exit 132, "Illegal instruction").
    static func write(_ text: String) {
        _ = try? FileHandle.standardError.write(contentsOf: Data(text.utf8))
    }
}

/// A status line on standard error: rewritten in place on a terminal (`\r` … erase to the end of the line); anywhere
/// else — a log file, a pipe — one plain line at most every `interval`, without control codes (`concord lab 2> log`
/// filled its log with `^[[K` before 2026-12-03).
final class StatusLine: Sendable {
    private let isTerminal = isatty(STDERR_FILENO) == 1
    private let lastPlainLine = Mutex<ContinuousClock.Instant?>(nil)
    let interval: Duration

    init(interval: Duration = .seconds(5)) { self.interval = interval }

    /// Shows `line`; `nil` ends the current one (a new line follows on a terminal; the next plain line is due at once).
    func update(_ line: String?) {
        if isTerminal {
            Progress.write(line.map { "\r" + $0 + "\u{1B}[K" } ?? "\n")
            return
        }
        let now = ContinuousClock.now
        let due = lastPlainLine.withLock { last -> Bool in
            guard line != nil else {
                last = nil
                return false
            }
            if let previous = last, now - previous < interval { return false }
            last = now
            return true
        }
        if due, let line { Progress.say(line) }
    }
}
