/// Settings of a ``SessionSealer``.
public struct SessionSealerConfiguration: Sendable, Hashable {
    /// The AEAD that seals new cookies (cookies record theirs, so switching keeps old ones readable).
    /// Default AES-256-GCM (hardware-accelerated on current CPUs).
    public var algorithm: SessionSealingAlgorithm
    /// Compress the payload before sealing when that makes it smaller. Default `false`.
    public var compression: Bool
    /// The largest cookie (`name=value`) allowed; sealing a session into a bigger one fails with
    /// ``SessionError`` naming the size, because browsers silently drop cookies over 4096 bytes. Default 4096.
    public var maximumCookieSize: Int
    /// The largest payload a compressed cookie may expand to when opened. Default 64 KiB.
    public var maximumPayloadSize: Int

    /// - Parameters:
    ///   - algorithm: AEAD for new cookies, default `.aes256GCM`.
    ///   - compression: compress payloads when it helps, default `false`.
    ///   - maximumCookieSize: largest `name=value` in bytes, default 4096.
    ///   - maximumPayloadSize: largest decompressed payload, default 64 KiB.
    public init(
        algorithm: SessionSealingAlgorithm = .aes256GCM,
        compression: Bool = false,
        maximumCookieSize: Int = 4096,
        maximumPayloadSize: Int = 64 * 1024
    ) {
        self.algorithm = algorithm
        self.compression = compression
        self.maximumCookieSize = maximumCookieSize
        self.maximumPayloadSize = maximumPayloadSize
    }
}

/// The AEAD used to seal client-side sessions (both from swift-crypto, both with 256-bit keys).
public enum SessionSealingAlgorithm: String, Sendable, Hashable, CaseIterable, Codable {
    case aes256GCM = "aes-256-gcm"
    case chaChaPoly = "chacha20-poly1305"

    var formatByte: UInt8 {
        switch self {
        case .aes256GCM: 1
        case .chaChaPoly: 2
        }
    }

    init?(formatByte: UInt8) {
        switch formatByte {
        case 1: self = .aes256GCM
        case 2: self = .chaChaPoly
        default: return nil
        }
    }
}
