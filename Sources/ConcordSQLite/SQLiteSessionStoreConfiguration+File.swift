import Foundation

extension SQLiteSessionStoreConfiguration {
    /// Whether ``path`` is an empty path or `:memory:`: a database private to each connection (the store then
    /// opens one connection), which no other process sees.
    public var isPrivateDatabase: Bool {
        path.isEmpty || path == ":memory:" || path.hasPrefix("file::memory:")
    }

    /// Checks that ``path`` can hold the store, without opening it: its directory exists, and a file already
    /// there is an SQLite database (or empty) that this process may read and write. With `shared`, a private
    /// database (``isPrivateDatabase``) is refused too — several processes, or a store that must outlive the
    /// process, need a file. ``SQLiteSessionStore`` runs the same check (not `shared`) before it opens the file, so
    /// a store that can never work says why in its first error instead of SQLite's `cantOpen` or `notADatabase`.
    public func checkFile(shared: Bool = false) throws(SQLiteSessionStoreConfigurationError) {
        if isPrivateDatabase {
            guard !shared else {
                throw SQLiteSessionStoreConfigurationError(path: path,
                    reason: "give a file path; an empty path or :memory: is a private database per connection, which other connections and processes cannot share")
            }
            return
        }
        let directory = (path as NSString).deletingLastPathComponent
        var isDirectory: ObjCBool = false
        guard directory.isEmpty || (FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) && isDirectory.boolValue) else {
            throw SQLiteSessionStoreConfigurationError(path: path, reason: "the directory \(directory) does not exist")
        }
        let parent = directory.isEmpty ? "." : directory
        let directoryWritable = FileManager.default.isWritableFile(atPath: parent)
        // A file that is there must be a database this process can write (an empty one becomes one); one that is
        // not is created in the directory.
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            guard directoryWritable else {
                throw SQLiteSessionStoreConfigurationError(path: path, reason: "the directory \(parent) is not writable by this process, so the file cannot be created")
            }
            return
        }
        if isDirectory.boolValue {
            throw SQLiteSessionStoreConfigurationError(path: path, reason: "that is a directory; give a file path in it (\(path)/sessions.sqlite)")
        }
        guard let file = FileHandle(forReadingAtPath: path) else {
            throw SQLiteSessionStoreConfigurationError(path: path, reason: "the file cannot be read (permissions?)")
        }
        let header = (try? file.read(upToCount: 16)) ?? Data()
        try? file.close()
        if !header.isEmpty && header != Data("SQLite format 3\0".utf8) {
            throw SQLiteSessionStoreConfigurationError(path: path, reason: "the file is not an SQLite database")
        }
        guard FileManager.default.isWritableFile(atPath: path) else {
            throw SQLiteSessionStoreConfigurationError(path: path, reason: "the file is not writable by this process")
        }
        // WAL mode writes beside the file: its -wal and -shm files, created in the directory when missing.
        for companion in [path + "-wal", path + "-shm"] {
            if FileManager.default.fileExists(atPath: companion) {
                guard FileManager.default.isWritableFile(atPath: companion) else {
                    throw SQLiteSessionStoreConfigurationError(path: path, reason: "\(companion) is not writable by this process (WAL mode writes it)")
                }
            } else if !directoryWritable {
                throw SQLiteSessionStoreConfigurationError(path: path,
                    reason: "the directory \(parent) is not writable by this process, so \(companion) (WAL mode) cannot be created")
            }
        }
    }
}

/// What ``SQLiteSessionStoreConfiguration/checkFile(shared:)`` found wrong with a store's path.
public struct SQLiteSessionStoreConfigurationError: Error, Sendable, CustomStringConvertible {
    public var path: String
    public var reason: String
    public var description: String { "SQLite store \(path.isEmpty ? "(empty path)" : path): \(reason)" }
}
