import Foundation
import Testing

@testable import ConcordLab

/// The lab empties `DIR/work/<strategy>` before a run only if an earlier run made it: `--output ~` with a
/// `~/work/store` of the user's own deleted it.
@Suite struct LabWorkDirectoryTests {
    @Test func onlyTheLabsOwnWorkDirectoryIsEmptied() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("concord-work-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let foreign = "\(root)/work/store"
        try FileManager.default.createDirectory(atPath: foreign, withIntermediateDirectories: true)
        try Data("mine".utf8).write(to: URL(fileURLWithPath: "\(foreign)/notes.txt"))
        #expect(throws: LabError.self) { try LabRun.clearWorkDirectory(foreign) }
        #expect(FileManager.default.fileExists(atPath: "\(foreign)/notes.txt"), "a directory the lab did not make was touched")

        let own = "\(root)/work/ring"
        try LabRun.clearWorkDirectory(own)  // made here, marked
        try Data("log".utf8).write(to: URL(fileURLWithPath: "\(own)/node-1.log"))
        try LabRun.clearWorkDirectory(own)  // the next run empties it
        #expect(!FileManager.default.fileExists(atPath: "\(own)/node-1.log"))
        #expect(FileManager.default.fileExists(atPath: "\(own)/\(LabRun.workMarker)"))
    }
}
