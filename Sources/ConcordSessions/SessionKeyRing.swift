import Crypto
import Foundation

/// The keys that seal client-side sessions: the newest seals, every listed key opens.
///
/// Rotation without logging anyone out: add a new key with a higher id and keep the old one listed until the
/// longest session sealed with it has expired (the absolute timeout), then drop it. Cookies carry the key id in
/// clear (authenticated), so opening never has to try every key.
public struct SessionKeyRing: Sendable {
    /// One 256-bit key and the id written into cookies it seals.
    public struct Key: Sendable {
        public var id: UInt16
        public var key: SymmetricKey

        /// - Precondition: `key` is 256 bits.
        public init(id: UInt16, key: SymmetricKey) {
            precondition(key.bitCount == 256, "session keys must be 256 bits, got \(key.bitCount)")
            self.id = id
            self.key = key
        }

        /// A key from its base64 (standard or URL-safe) text, as kept in configuration; `nil` unless 32 bytes.
        /// ``init(id:parsing:)`` says why not.
        public init?(id: UInt16, base64: String) {
            guard let key = try? Key(id: id, parsing: base64) else { return nil }
            self = key
        }

        /// A key from its base64 (standard or URL-safe) text, as kept in configuration (an environment variable,
        /// a secret file).
        /// - Throws: ``SessionError`` `.invalidConfiguration` saying whether the text is not base64 or not 32 bytes.
        public init(id: UInt16, parsing base64: String) throws(SessionError) {
            let text = base64.trimmingCharacters(in: .whitespacesAndNewlines)
            let urlSafe = String(text.compactMap { character -> Character? in
                switch character {
                case "+": "-"
                case "/": "_"
                case "=": nil
                default: character
                }
            })
            guard let bytes = Base64URL.decode(urlSafe) else {
                throw .invalidConfiguration("session key \(id) is not base64 (make one with: openssl rand -base64 32)")
            }
            guard bytes.count == 32 else {
                throw .invalidConfiguration("session key \(id) is \(bytes.count) bytes; it must be 32 (256 bits: openssl rand -base64 32)")
            }
            self.init(id: id, key: SymmetricKey(data: bytes))
        }

        /// A fresh random key.
        public static func generate(id: UInt16) -> Key {
            Key(id: id, key: SymmetricKey(size: .bits256))
        }

        /// The key as base64url text, for configuration files.
        public var base64: String {
            key.withUnsafeBytes { Base64URL.encode($0) }
        }
    }

    /// The key that seals new cookies.
    public let current: Key
    private let keysByID: [UInt16: SymmetricKey]

    /// A ring that seals with `current` and also opens cookies sealed with any of `previous`, checked: keys from
    /// configuration get an error instead of the trap of ``init(current:previous:)``.
    /// - Throws: ``SessionError`` `.invalidConfiguration` when two keys share an id.
    public init(checking current: Key, previous: [Key] = []) throws(SessionError) {
        var ids: Set<UInt16> = [current.id]
        for key in previous where !ids.insert(key.id).inserted {
            throw .invalidConfiguration("session key id \(key.id) is listed twice; every key needs an id of its own")
        }
        self.init(current: current, previous: previous)
    }

    /// A ring that seals with `current` and also opens cookies sealed with any of `previous`.
    /// - Precondition: key ids are unique (``init(checking:previous:)`` throws instead).
    public init(current: Key, previous: [Key] = []) {
        var keys: [UInt16: SymmetricKey] = [current.id: current.key]
        for key in previous {
            precondition(keys[key.id] == nil, "session key id \(key.id) is listed twice")
            keys[key.id] = key.key
        }
        self.current = current
        self.keysByID = keys
    }

    /// A ring with one fresh random key (sessions do not survive a restart; fine for tests and single runs).
    public static func random(id: UInt16 = 1) -> SessionKeyRing {
        SessionKeyRing(current: .generate(id: id))
    }

    /// The key with `id`, if listed.
    public func key(id: UInt16) -> SymmetricKey? { keysByID[id] }

    /// The ids of all listed keys.
    public var keyIDs: [UInt16] { keysByID.keys.sorted() }
}
