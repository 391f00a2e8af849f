import Foundation

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
