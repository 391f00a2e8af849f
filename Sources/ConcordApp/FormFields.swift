import Foundation
import Hummingbird

/// The fields of an `application/x-www-form-urlencoded` body (a browser form), bounded in size. Another content
/// type is a 415 and bytes that are not UTF-8 a 400 (both used to be read as a form, invalid bytes turned into
/// U+FFFD — a user name of "��" logged in); a request without a content type is read as a form (curl's `-d`
/// always sends one, a body-less POST none).
struct FormFields {
    private var values: [String: String] = [:]

    init<Context: RequestContext>(request: Request, context: Context) async throws {
        if let type = request.headers[.contentType],
           type.split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased() != "application/x-www-form-urlencoded" {
            throw HTTPError(.unsupportedMediaType, message: "Send the form as application/x-www-form-urlencoded.")
        }
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: ConcordAppServer.maximumFormBytes)
        } catch {
            throw HTTPError(.contentTooLarge, message: "The form is larger than \(ConcordAppServer.maximumFormBytes) bytes.")
        }
        guard let text = String(validating: buffer.readableBytesView, as: UTF8.self) else {
            throw HTTPError(.badRequest, message: "The form is not UTF-8.")
        }
        self.init(encoded: text)
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
