import ConcordSessions
import Foundation

/// A command-line tool a benchmark runs as its peer (`redis-benchmark`, `wrk`): found on PATH, run to completion
/// without blocking a Swift concurrency thread (the servers being measured share those threads), its standard
/// output returned.
struct ExternalTool: Sendable {
    let url: URL

    /// - Parameter installHint: how to get the tool, shown when it is missing.
    init(_ name: String, installHint: String) throws {
        let directories = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":").map(String.init)
        for directory in directories + ["/usr/bin", "/usr/local/bin"] {
            let url = URL(fileURLWithPath: directory).appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: url.path) {
                self.url = url
                return
            }
        }
        throw ExternalToolError("\(name) is not installed (\(installHint))")
    }

    var name: String { url.lastPathComponent }

    /// Runs the tool with `arguments` and returns what it printed on standard output; a non-zero exit throws.
    func run(_ arguments: [String]) async throws -> String {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("concord-\(name)-\(UUID().uuidString).out")
        _ = FileManager.default.createFile(atPath: output.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: output) }
        let handle = try FileHandle(forWritingTo: output)
        defer { try? handle.close() }
        let process = Process()
        process.executableURL = url
        process.arguments = arguments
        process.standardOutput = handle
        process.standardError = FileHandle.nullDevice
        let status: Int32 = try await withCheckedThrowingContinuation { continuation in
            process.terminationHandler = { continuation.resume(returning: $0.terminationStatus) }
            InheritedDescriptors.markCloseOnExec()  // the tool must not hold this process's sockets
            do { try process.run() } catch {
                process.terminationHandler = nil
                continuation.resume(throwing: error)
            }
        }
        let text = (try? String(contentsOf: output, encoding: .utf8)) ?? ""
        guard status == 0 else { throw ExternalToolError("\(name) exited with status \(status): \(text.suffix(500))") }
        return text
    }
}

struct ExternalToolError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
