import Foundation
import Hummingbird

/// The fields of an `application/x-www-form-urlencoded` body (a browser form), bounded in size.
struct FormFields {
    private var values: [String: String] = [:]

    init<Context: RequestContext>(request: Request, context: Context) async throws {
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: ConcordAppServer.maximumFormBytes)
        } catch {
            throw HTTPError(.contentTooLarge, message: "The form is larger than \(ConcordAppServer.maximumFormBytes) bytes.")
        }
        self.init(encoded: String(buffer: buffer))
    }

    init(encoded text: String) {
        for pair in text.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let rawName = parts.first, let name = Self.decode(rawName), values[name] == nil else { continue }
            values[name] = parts.count > 1 ? (Self.decode(parts[1]) ?? "") : ""
        }
    }

    subscript(name: String) -> String? { values[name] }

    private static func decode(_ text: Substring) -> String? {
        String(text).replacingOccurrences(of: "+", with: " ").removingPercentEncoding
    }
}
