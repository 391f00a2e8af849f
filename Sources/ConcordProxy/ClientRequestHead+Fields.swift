import ConcordHashing
import NIOCore

/// Reading a request head's fields and target in place, for routing keys and trusted X-Forwarded-For: each
/// lookup is a scan of the head's bytes that returns a range of them, so no `String` is made per request.
extension ClientRequestHead {
    /// The value of cookie `name` (case-sensitive) from the Cookie field(s): the first `name=value` pair with a
    /// non-empty value.
    func cookie(named name: String) -> Range<Int>? {
        if cookieFieldCount == 0 { return nil }
        return bytes.withUnsafeReadableBytes { p in
            // One Cookie field (the parse noted where): no pass over the other fields.
            if let only = onlyCookieField { return Self.cookie(named: name, in: p, value: only) }
            var found: Range<Int>?
            forEachField(p) { field, value in
                guard found == nil, HTTPSyntax.equalsIgnoringCase(p, field, "cookie") else { return }
                found = Self.cookie(named: name, in: p, value: value)
            }
            return found
        }
    }

    /// The value of cookie `name` within one Cookie field's value `value`: the first `name=value` pair with a
    /// non-empty value.
    private static func cookie(named name: String, in p: UnsafeRawBufferPointer, value: Range<Int>) -> Range<Int>? {
        var start = value.lowerBound
        while start < value.upperBound {
            var end = start
            while end < value.upperBound && p[end] != HTTPSyntax.semicolon { end += 1 }
            var pairStart = start
            while pairStart < end && p[pairStart] == HTTPSyntax.space { pairStart += 1 }
            var equals = pairStart
            while equals < end && p[equals] != UInt8(ascii: "=") { equals += 1 }
            if equals < end, equals + 1 < end, HTTPSyntax.equals(p, pairStart..<equals, name) {
                // RFC 6265 allows a value in double quotes: `sid="abc"` hashes as `sid=abc` does.
                if end - equals >= 4, p[equals + 1] == UInt8(ascii: "\""), p[end - 1] == UInt8(ascii: "\"") { return (equals + 2)..<(end - 1) }
                return (equals + 1)..<end
            }
            start = end + 1
        }
        return nil
    }

    /// The value of the first field named `lowercasedName` (compared ignoring case), without surrounding whitespace.
    func firstValue(named lowercasedName: String) -> Range<Int>? {
        bytes.withUnsafeReadableBytes { p in
            var found: Range<Int>?
            forEachField(p) { field, value in
                if found == nil && HTTPSyntax.equals(p, field, lowercasedName, ignoringCase: true) { found = value }
            }
            return found
        }
    }

    /// The comma-separated elements of every field named `lowercasedName`, trimmed, empty ones left out.
    func listElements(named lowercasedName: String) -> [String] {
        bytes.withUnsafeReadableBytes { p in
            var elements: [String] = []
            forEachField(p) { field, value in
                guard HTTPSyntax.equals(p, field, lowercasedName, ignoringCase: true) else { return }
                for element in String(decoding: UnsafeRawBufferPointer(rebasing: p[value]), as: UTF8.self).split(separator: ",") {
                    let trimmed = element.trimmingWhitespace()
                    if !trimmed.isEmpty { elements.append(trimmed) }
                }
            }
            return elements
        }
    }

    /// The value of query parameter `name` in the target: the first `name=value` pair with a non-empty value.
    /// (A target has no `#fragment`: the parse refuses one.)
    func queryValue(named name: String) -> Range<Int>? {
        bytes.withUnsafeReadableBytes { p in
            var i = target.lowerBound
            while i < target.upperBound && p[i] != UInt8(ascii: "?") { i += 1 }
            guard i < target.upperBound else { return nil }
            let queryEnd = target.upperBound
            var start = i + 1
            while start < queryEnd {
                var end = start
                while end < queryEnd && p[end] != UInt8(ascii: "&") { end += 1 }
                var equals = start
                while equals < end && p[equals] != UInt8(ascii: "=") { equals += 1 }
                if equals + 1 < end, HTTPSyntax.equals(p, start..<equals, name) { return (equals + 1)..<end }
                start = end + 1
            }
            return nil
        }
    }

    /// The target without its query.
    var path: Range<Int> {
        bytes.withUnsafeReadableBytes { p in
            var end = target.lowerBound
            while end < target.upperBound && p[end] != UInt8(ascii: "?") { end += 1 }
            return target.lowerBound..<end
        }
    }

    /// ``KeyHash`` of the bytes in `range` (what `KeyHash.hash` gives for the same text).
    func hash(_ range: Range<Int>) -> UInt64 {
        bytes.withUnsafeReadableBytes { KeyHash.xxh64(UnsafeRawBufferPointer(rebasing: $0[range])) }
    }

    /// The bytes in `range` as text.
    func text(_ range: Range<Int>) -> String {
        bytes.withUnsafeReadableBytes { String(decoding: UnsafeRawBufferPointer(rebasing: $0[range]), as: UTF8.self) }
    }

    /// Calls `body(name, value)` for each field line.
    private func forEachField(_ p: UnsafeRawBufferPointer, _ body: (Range<Int>, Range<Int>) -> Void) {
        HTTPSyntax.forEachField(p, from: HTTPSyntax.lineEnd(p, from: target.upperBound)) { name, value, _ in body(name, value) }
    }
}
