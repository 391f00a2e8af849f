import Crypto

/// Seals a session record into cookie text and opens it again: the `client` strategy, where the session lives in
/// the browser and no server keeps anything.
///
/// Cookie bytes (then base64url): `algorithm (1) | key id (2, big-endian) | nonce (12) | ciphertext | tag (16)`,
/// where the first three bytes are authenticated as associated data. The plaintext is
/// `flags (1, bit 0 = compressed) | expiresAt ms since 1970 (8) | record`, so the expiry is covered by the tag:
/// a replayed cookie is refused once it has expired, whatever the browser was told.
public struct SessionSealer: Sendable {
    public let keyRing: SessionKeyRing
    public let configuration: SessionSealerConfiguration

    private static let headerSize = 3
    private static let nonceSize = 12
    private static let tagSize = 16
    private static let compressedFlag: UInt8 = 1

    public init(keyRing: SessionKeyRing, configuration: SessionSealerConfiguration = .init()) {
        self.keyRing = keyRing
        self.configuration = configuration
    }

    /// Cookie text carrying `plaintext` until `expiresAt` (ms since 1970), sealed with the ring's current key.
    public func seal(_ plaintext: [UInt8], expiresAt: Int64) throws -> String {
        var body = plaintext
        var flags: UInt8 = 0
        if configuration.compression {
            let compressed = SessionCompression.compress(plaintext)
            if compressed.count < plaintext.count {
                body = compressed
                flags |= Self.compressedFlag
            }
        }
        var sealedInput = [UInt8]()
        sealedInput.reserveCapacity(9 + body.count)
        sealedInput.append(flags)
        sealedInput.appendBigEndian(UInt64(bitPattern: expiresAt))
        sealedInput.append(contentsOf: body)

        let key = keyRing.current
        var header: [UInt8] = [configuration.algorithm.formatByte]
        header.appendBigEndian(key.id)
        var output = header
        do {
            switch configuration.algorithm {
            case .aes256GCM:
                let box = try AES.GCM.seal(sealedInput, using: key.key, nonce: AES.GCM.Nonce(), authenticating: header)
                output.append(contentsOf: box.nonce)
                output.append(contentsOf: box.ciphertext)
                output.append(contentsOf: box.tag)
            case .chaChaPoly:
                let box = try ChaChaPoly.seal(sealedInput, using: key.key, nonce: ChaChaPoly.Nonce(), authenticating: header)
                output.append(contentsOf: box.nonce)
                output.append(contentsOf: box.ciphertext)
                output.append(contentsOf: box.tag)
            }
        } catch {
            throw SessionError.sealingFailed("\(error)")
        }
        return Base64URL.encode(output)
    }

    /// The plaintext sealed in `text`, or why it cannot be opened at `now` (ms since 1970).
    public func open(_ text: some StringProtocol, now: Int64) -> Result<[UInt8], SessionRejection> {
        // Refuse absurd input before decoding it (a sealed cookie never exceeds the cookie limit).
        guard text.utf8.count <= configuration.maximumCookieSize, let bytes = Base64URL.decode(text),
            bytes.count >= Self.headerSize + Self.nonceSize + Self.tagSize + 9
        else { return .failure(.malformed) }
        guard let algorithm = SessionSealingAlgorithm(formatByte: bytes[0]) else { return .failure(.malformed) }
        let keyID = UInt16(bytes[1]) << 8 | UInt16(bytes[2])
        guard let key = keyRing.key(id: keyID) else { return .failure(.unknownKey) }
        let header = bytes[0..<Self.headerSize]
        let nonce = bytes[Self.headerSize..<Self.headerSize + Self.nonceSize]
        let ciphertext = bytes[(Self.headerSize + Self.nonceSize)..<(bytes.count - Self.tagSize)]
        let tag = bytes[(bytes.count - Self.tagSize)...]
        let opened: [UInt8]
        do {
            switch algorithm {
            case .aes256GCM:
                let box = try AES.GCM.SealedBox(nonce: AES.GCM.Nonce(data: nonce), ciphertext: ciphertext, tag: tag)
                opened = Array(try AES.GCM.open(box, using: key, authenticating: header))
            case .chaChaPoly:
                let box = try ChaChaPoly.SealedBox(nonce: ChaChaPoly.Nonce(data: nonce), ciphertext: ciphertext, tag: tag)
                opened = Array(try ChaChaPoly.open(box, using: key, authenticating: header))
            }
        } catch {
            return .failure(.tampered)
        }
        var reader = ByteReader(opened)
        guard let flags = reader.readByte(), let expiresAt = reader.readUInt64() else { return .failure(.corrupt) }
        guard now < Int64(bitPattern: expiresAt) else { return .failure(.expired) }
        let body = reader.readRest()
        guard flags & Self.compressedFlag != 0 else { return .success(body) }
        guard let plaintext = SessionCompression.decompress(body, maximumSize: configuration.maximumPayloadSize) else {
            return .failure(.corrupt)
        }
        return .success(plaintext)
    }
}
