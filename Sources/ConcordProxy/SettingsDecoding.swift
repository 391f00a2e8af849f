import Yams

/// Decoding of settings files — the proxy's `--config` and a lab scenario — with errors a person can act on: the
/// dotted path of the setting and what is wrong with it, and a key the settings do not have refused by name.
/// Before 2026-12-02 `balanse:` or `healthpath:` was ignored without a word, so the proxy ran on defaults the
/// operator thought they had changed (and a scenario's `user: 5` ran 2,000 users); nginx and HAProxy refuse an
/// unknown directive too.
public enum SettingsDecoding {
    /// Why a settings text could not be used.
    public struct Failure: Error, CustomStringConvertible {
        public let reason: String
        public var description: String { reason }
    }

    /// Decodes YAML text into `T`, whose `init(from:)` calls ``rejectUnknownKeys(in:known:)``.
    public static func decodeYAML<T: Decodable>(_ type: T.Type, from text: String) throws(Failure) -> T {
        do { return try YAMLDecoder().decode(T.self, from: text) } catch let error as DecodingError {
            throw Failure(reason: describe(error))
        } catch let error as YamlError {
            throw Failure(reason: "not valid YAML: \(error)")
        } catch {
            throw Failure(reason: "\(error)")
        }
    }

    /// Throws when the mapping being decoded has a key that `Key` does not list; the error names it, where it is,
    /// and the known name it is closest to (`balanse` → `balance`, `healthpath` → `healthPath`).
    /// - Parameter sections: the settings of this level's sections (`limits: [maxBodyBytes, …]`), so a key that
    ///   belongs in one is named there (`maxQueuePerBackend` at the top → `limits.maxQueuePerBackend`).
    public static func rejectUnknownKeys<Key: CodingKey & CaseIterable>(
        in decoder: any Decoder, known: Key.Type, sections: KeyValuePairs<String, [String]> = [:]
    ) throws {
        let names = Key.allCases.map(\.stringValue)
        for key in try decoder.container(keyedBy: AnyKey.self).allKeys where !names.contains(key.stringValue) {
            let section = sections.first { $0.value.contains(key.stringValue) }?.key
            let hint = section.map { " (it belongs under \($0): — \($0).\(key.stringValue))" }
                ?? closest(to: key.stringValue, in: names).map { " (did you mean '\($0)'?)" } ?? ""
            throw DecodingError.dataCorrupted(.init(
                codingPath: decoder.codingPath + [key],
                debugDescription: "unknown setting\(hint); the settings here are \(names.joined(separator: ", "))"))
        }
    }

    /// `path: what is wrong` for a decoding error (`limits.maxBodyByte: unknown setting …`, `phases[1].kind: …`).
    public static func describe(_ error: DecodingError) -> String {
        switch error {
        case .dataCorrupted(let c) where c.underlyingError is YamlError:
            // Yams says only "The given data was not valid YAML."; the line and column are in the error beneath.
            return "not valid YAML: \(c.underlyingError.map { "\($0)" } ?? c.debugDescription)"
        case .dataCorrupted(let c) where c.underlyingError != nil:
            // An error a settings type threw itself (an unknown lab strategy): Yams wraps it as "not valid YAML".
            return at(c.codingPath, c.underlyingError.map { "\($0)" } ?? c.debugDescription)
        case .typeMismatch(let type, let c):
            // Yams's own words ("Expected to decode Int but found Scalar instead.") name Swift types.
            return at(c.codingPath, "expected \(kind(of: type))")
        case .keyNotFound(let key, let c):
            // Foundation's words name the CodingKeys type.
            return at(c.codingPath + [key], "missing (required here)")
        case .dataCorrupted(let c), .valueNotFound(_, let c):
            return at(c.codingPath, c.debugDescription)
        @unknown default:
            return "\(error)"
        }
    }

    private static func at(_ codingPath: [any CodingKey], _ message: String) -> String {
        var path = ""
        for key in codingPath {
            if let index = key.intValue { path += "[\(index)]" } else { path += (path.isEmpty ? "" : ".") + key.stringValue }
        }
        return path.isEmpty ? message : "\(path): \(message)"
    }

    private static func kind(of type: Any.Type) -> String {
        switch type {
        case is Int.Type: "a whole number"
        case is Double.Type: "a number"
        case is Bool.Type: "true or false"
        case is String.Type: "text"
        default:
            // Yams names what it wanted as its node kinds (Mapping, Sequence), Swift as Array or Dictionary.
            ["Array", "Sequence"].contains { "\(type)".contains($0) } ? "a list ([a, b], or one '- a' line each)"
                : ["Dictionary", "Mapping"].contains { "\(type)".contains($0) } ? "settings (name: value, indented below)"
                : "a value of type \(type)"
        }
    }

    private struct AnyKey: CodingKey {
        let stringValue: String
        let intValue: Int?
        init(stringValue: String) { (self.stringValue, intValue) = (stringValue, nil) }
        init(intValue: Int) { (stringValue, self.intValue) = ("\(intValue)", intValue) }
    }

    /// The known name nearest to a mistyped one, if it is near: the same but for case, a few edits away, or the only
    /// name it abbreviates.
    private static func closest(to key: String, in names: [String]) -> String? {
        let typed = Array(key.lowercased())
        let scored = names.map { ($0, editDistance(typed, Array($0.lowercased()))) }
        if let best = scored.min(by: { $0.1 < $1.1 }), best.1 <= max(2, typed.count / 4) { return best.0 }
        // An abbreviation (`sec`, `interv`): the one name it begins.
        let extended = names.filter { typed.count >= 3 && $0.lowercased().hasPrefix(String(typed)) }
        return extended.count == 1 ? extended[0] : nil
    }

    private static func editDistance(_ a: [Character], _ b: [Character]) -> Int {
        var row = Array(0...b.count)
        for (i, ca) in a.enumerated() {
            var diagonal = row[0]
            row[0] = i + 1
            for (j, cb) in b.enumerated() {
                let above = row[j + 1]
                row[j + 1] = min(above + 1, row[j] + 1, diagonal + (ca == cb ? 0 : 1))
                diagonal = above
            }
        }
        return row[b.count]
    }
}

/// A setting with a fixed set of spellings (`mode: http | tcp`): a value that is none of them is refused with the
/// list, instead of Swift's "Cannot initialize ProxyMode from invalid String value udp".
public protocol SettingChoice: CaseIterable, RawRepresentable, Decodable where RawValue == String {}

extension SettingChoice {
    public init(from decoder: any Decoder) throws {
        self = try SettingsDecoding.choice(from: decoder)
    }
}

/// A choice among the cases of an enum declared elsewhere (`HashAlgorithm`), decoded as ``SettingChoice`` does.
struct ChoiceSetting<Value: CaseIterable & RawRepresentable>: Decodable where Value.RawValue == String {
    let value: Value

    init(from decoder: any Decoder) throws {
        value = try SettingsDecoding.choice(from: decoder)
    }
}

extension SettingsDecoding {
    /// One of `Value`'s cases by name, or an error listing them (`'ringg' is not one of modulo, ring, …`).
    static func choice<Value: CaseIterable & RawRepresentable>(from decoder: any Decoder) throws -> Value where Value.RawValue == String {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let value = Value(rawValue: text) else {
            throw DecodingError.dataCorrupted(.init(
                codingPath: decoder.codingPath,
                debugDescription: "'\(text)' is not one of \(Value.allCases.map(\.rawValue).joined(separator: ", "))"))
        }
        return value
    }
}
