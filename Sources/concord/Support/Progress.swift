import Foundation

/// Progress lines for long runs go to standard error, so standard output stays clean for tables and `--json`.
enum Progress {
    static func say(_ message: String) {
        FileHandle.standardError.write(Data((message + "\n").utf8))
    }
}
