#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// Which file a path names (device and inode), to notice the store's file deleted or replaced under a running
/// process: SQLite keeps writing to the file it opened, while a process that opens the path later (a restarted
/// node) gets another one — the nodes stop sharing sessions without any error.
struct SQLiteFileIdentity: Equatable, Sendable {
    var device: UInt64
    var inode: UInt64

    /// The file at `path` now; nil if there is none.
    init?(path: String) {
        var status = stat()
        guard stat(path, &status) == 0 else { return nil }
        device = UInt64(status.st_dev)
        inode = UInt64(status.st_ino)
    }

    /// What became of the file opened as `opened` at `path`; nil while it is still there.
    static func change(at path: String, opened: SQLiteFileIdentity) -> SQLiteFileChange? {
        guard let now = SQLiteFileIdentity(path: path) else { return .deleted }
        return now == opened ? nil : .replaced
    }
}

public enum SQLiteFileChange: Sendable, Equatable {
    case deleted
    case replaced
}

/// The file a store's connections opened, and the change to it last reported (so each is logged once).
final class SQLiteFileWatch: Sendable {
    private let state = Mutex<(opened: SQLiteFileIdentity?, reported: SQLiteFileChange?)>((nil, nil))

    func opened(_ identity: SQLiteFileIdentity?) {
        state.withLock { $0 = (identity, nil) }
    }

    /// The file's change since it was opened (nil if none, or nothing is open), and whether it is news.
    func check(path: String) -> (change: SQLiteFileChange?, isNew: Bool) {
        state.withLock { state in
            guard let opened = state.opened else { return (nil, false) }
            let change = SQLiteFileIdentity.change(at: path, opened: opened)
            defer { state.reported = change }
            return (change, change != nil && change != state.reported)
        }
    }
}
