import Foundation

/// The fenced YAML blocks of a page in docs/ — what people copy — for tests that check each still parses.
/// `filePath`: the calling test file's (`Tests/<Target>/<File>.swift`), from which docs/ is found.
public enum DocumentedExamples {
    public static func yamlBlocks(inDoc page: String, filePath: StaticString = #filePath) throws -> [String] {
        let url = URL(fileURLWithPath: "\(filePath)").deletingLastPathComponent().appendingPathComponent("../../docs/\(page)")
        return try String(contentsOf: url, encoding: .utf8).matches(of: /```yaml\n(?<yaml>[\s\S]*?)```/).map { String($0.output.yaml) }
    }
}

/// What `body` threw, as its description, or "accepted" when it did not throw: for expectations on error texts.
public func thrownText(_ body: () throws -> Any) -> String {
    do {
        _ = try body()
        return "accepted"
    } catch {
        return "\(error)"
    }
}
