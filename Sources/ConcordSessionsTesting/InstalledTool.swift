import Foundation

/// Finds a real server's executable (`redis-server`, `redis-cli`) for tests that start one. A missing tool is an
/// error naming how to install it: the test fails, it is never skipped.
public enum InstalledTool {
    public struct Missing: Error, CustomStringConvertible {
        public let description: String
    }

    /// The first executable `name` on `PATH`, then in /usr/bin, /usr/local/bin and /usr/sbin.
    public static func url(_ name: String, installHint: String) throws -> URL {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for directory in path.split(separator: ":").map(String.init) + ["/usr/bin", "/usr/local/bin", "/usr/sbin"] {
            let candidate = URL(fileURLWithPath: directory).appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        throw Missing(description: "\(name) is not installed: \(installHint)")
    }
}
