import ConcordSessions
import NIOCore

/// How one session is laid out in its Redis string: a fixed header the Lua scripts and `GETRANGE` read without the
/// payload — the version as 20 decimal digits, the user id's length as 5 digits — then the user id and the payload.
///
///     00000000000000000007 00005 alice <payload bytes>   (without the spaces)
package enum RedisSessionRecord {
    static let versionLength = 20
    static let headerLength = 25
    static let maximumUserIDLength = 99_999

    /// Everything after the version (the unconditional save script prepends the version it assigns).
    static func body(userID: String?, payload: [UInt8]) -> ByteBuffer {
        encode(version: nil, userID: userID, payload: payload)
    }

    /// The whole record: header with `version`, user id, payload.
    package static func record(version: UInt64, userID: String?, payload: [UInt8]) -> ByteBuffer {
        encode(version: version, userID: userID, payload: payload)
    }

    /// The record's bytes, starting at the user id's length when `version` is `nil`.
    private static func encode(version: UInt64?, userID: String?, payload: [UInt8]) -> ByteBuffer {
        let user = (userID ?? "").utf8
        var buffer = ByteBuffer()
        buffer.reserveCapacity(headerLength + user.count + payload.count)
        write(version: version, user: user, payload: payload, to: &buffer)
        return buffer
    }

    private static func write(version: UInt64?, user: String.UTF8View, payload: [UInt8], to buffer: inout ByteBuffer) {
        if let version { writeDigits(version, width: versionLength, to: &buffer) }
        writeDigits(UInt64(user.count), width: 5, to: &buffer)
        buffer.writeBytes(user)
        buffer.writeBytes(payload)
    }

    /// The arguments of ``replaceScript`` — the expected prefix (header at `expectedVersion` + user id), the TTL in
    /// milliseconds and the new record at `expectedVersion + 1` — as three slices of one buffer: one allocation per
    /// save instead of four.
    static func replaceArguments(expectedVersion: UInt64, userID: String?, milliseconds: Int64, payload: [UInt8])
        -> [RedisArgument]
    {
        let user = (userID ?? "").utf8
        let prefixLength = headerLength + user.count
        var buffer = ByteBuffer()
        buffer.reserveCapacity(2 * prefixLength + 20 + payload.count)
        write(version: expectedVersion, user: user, payload: [], to: &buffer)
        let ttlLength = buffer.writeString(String(milliseconds))
        write(version: expectedVersion + 1, user: user, payload: payload, to: &buffer)
        return [
            RedisArgument(buffer.getSlice(at: 0, length: prefixLength)!),
            RedisArgument(buffer.getSlice(at: prefixLength, length: ttlLength)!),
            RedisArgument(buffer.getSlice(at: prefixLength + ttlLength, length: buffer.writerIndex - prefixLength - ttlLength)!),
        ]
    }

    /// The first bytes of a record at `version` owned by `userID`: header and user id, no payload.
    package static func prefix(version: UInt64, userID: String?) -> ByteBuffer {
        record(version: version, userID: userID, payload: [])
    }

    /// `value` as exactly `width` zero-padded decimal digits (callers keep it within range).
    private static func writeDigits(_ value: UInt64, width: Int, to buffer: inout ByteBuffer) {
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: width) { bytes in
            var rest = value
            for index in stride(from: width - 1, through: 0, by: -1) {
                bytes[index] = UInt8(truncatingIfNeeded: rest % 10) &+ UInt8(ascii: "0")
                rest /= 10
            }
            return width
        }
    }

    /// Every `load` decodes a record: the header's digits are read from the bytes (no `String` per field).
    static func decode(id: String, record: ByteBuffer) throws(SessionStoreError) -> StoredSession {
        var record = record
        guard let header = record.readSlice(length: headerLength),
            let version = digits(header.readableBytesView.prefix(versionLength)),
            let userLength = digits(header.readableBytesView.dropFirst(versionLength)),
            let user = record.readString(length: Int(userLength))
        else { throw .corrupt("record of session \(id) has no valid header") }
        return StoredSession(
            id: id, payload: Array(record.readableBytesView), version: version, userID: user.isEmpty ? nil : user)
    }

    /// The value of ASCII decimal digits (`nil` for anything else, none at all, or more than a `UInt64` holds).
    private static func digits(_ bytes: ByteBufferView.SubSequence) -> UInt64? {
        guard !bytes.isEmpty else { return nil }
        var value: UInt64 = 0
        for byte in bytes {
            let digit = byte &- UInt8(ascii: "0")
            guard digit < 10 else { return nil }
            let (shifted, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = shifted.addingReportingOverflow(UInt64(digit))
            guard !overflow1, !overflow2 else { return nil }
            value = sum
        }
        return value
    }

    static func version(header: ByteBuffer) -> UInt64? {
        digits(header.readableBytesView[...])
    }

    /// After a successful write, when the caller passes the user's index as KEYS[2] and the session id as ARGV[4]:
    /// what ``indexScript`` does, in the same script, so a logged-in user's save is one round trip instead of two.
    /// Only on one server: in a cluster the index is in another slot (usually on another node), and the store runs
    /// ``indexScript`` after the write instead.
    private static let indexStep = """
          if #KEYS > 1 then
            \(indexLua(index: "KEYS[2]", id: "ARGV[4]", milliseconds: "ARGV[2]"))
          end
        """

    /// Adds session `id` to user index `index` and makes the index live at least `milliseconds` (Lua expressions):
    /// the body of ``indexScript`` and of ``indexStep``.
    private static func indexLua(index: String, id: String, milliseconds: String) -> String {
        """
        redis.call('SADD', \(index), \(id))
            if redis.call('PTTL', \(index)) < tonumber(\(milliseconds)) then redis.call('PEXPIRE', \(index), \(milliseconds)) end
        """
    }

    /// Replaces a record the caller read at a known version, with the next version already written into the new
    /// record by the caller, so the common case is one `GETRANGE`, one string compare and one `SET` (no Lua number
    /// parsing or string building: that made the general script cost Redis ≈ 5 µs against ≈ 3 µs for this one).
    /// KEYS[1] = record, KEYS[2] = the user's index (optional, ``indexStep``); ARGV[1] = the record's expected prefix
    /// (header at the expected version + user id); ARGV[2] = TTL in ms; ARGV[3] = the new record (version + 1);
    /// ARGV[4] = the session id (with KEYS[2]).
    /// Returns the previous user id (`''` when it is the same one or none) when saved, or `{0, stored version,
    /// exists 1|0}` on a conflict.
    package static let replaceScript = RedisScript(
        """
        local expected = ARGV[1]
        if redis.call('GETRANGE', KEYS[1], 0, string.len(expected) - 1) == expected then
          redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[2])
        \(indexStep)
          return ''
        end
        local h = redis.call('GETRANGE', KEYS[1], 0, 24)
        if h == '' then return {0, 0, 0} end
        local current = tonumber(string.sub(h, 1, 20))
        local ulen = tonumber(string.sub(h, 21, 25))
        if string.len(h) < 25 or current == nil or ulen == nil then
          return redis.error_reply('CORRUPT session record header')
        end
        if current ~= tonumber(string.sub(expected, 1, 20)) then return {0, current, 1} end
        local user = ''
        if ulen > 0 then user = redis.call('GETRANGE', KEYS[1], 25, 24 + ulen) end
        redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[2])
        \(indexStep)
        return user
        """)

    /// Saves unconditionally (`ARGV[1]` = `''`) or only when the record does not exist (`ARGV[1]` = `0`), assigning
    /// the stored version + 1. KEYS[1] = record, KEYS[2] = the user's index (optional, ``indexStep``); ARGV[2] = TTL
    /// in ms; ARGV[3] = body; ARGV[4] = the session id (with KEYS[2]).
    /// Returns `{saved 1|0, version, exists 1|0, previous user}`.
    static let saveScript = RedisScript(
        """
        local h = redis.call('GETRANGE', KEYS[1], 0, 24)
        local current = 0
        local user = ''
        if h ~= '' then
          current = tonumber(string.sub(h, 1, 20))
          local ulen = tonumber(string.sub(h, 21, 25))
          if string.len(h) < 25 or current == nil or ulen == nil then
            return redis.error_reply('CORRUPT session record header')
          end
          if ulen > 0 then user = redis.call('GETRANGE', KEYS[1], 25, 24 + ulen) end
        end
        if ARGV[1] ~= '' and tonumber(ARGV[1]) ~= current then
          return {0, current, h ~= '' and 1 or 0, user}
        end
        redis.call('SET', KEYS[1], string.format('%020d', current + 1) .. ARGV[3], 'PX', ARGV[2])
        \(indexStep)
        return {1, current + 1, 1, user}
        """)

    /// Extends the record's life; returns its user id (`''` for none), or null when it does not exist.
    /// KEYS[1] = record; ARGV[1] = TTL in ms. On one server ARGV[2] (the index keys' prefix, `…user:{`) and ARGV[3]
    /// (the session id) let the script extend the user's index itself and return `''`: one round trip. The index
    /// key is built here, not declared in KEYS, which only a single server allows; in a cluster the index lives in
    /// the user's slot and the client follows up.
    static let touchScript = RedisScript(
        """
        if redis.call('PEXPIRE', KEYS[1], ARGV[1]) == 0 then return false end
        local ulen = tonumber(redis.call('GETRANGE', KEYS[1], 20, 24))
        if ulen == nil or ulen == 0 then return '' end
        local user = redis.call('GETRANGE', KEYS[1], 25, 24 + ulen)
        if ARGV[2] then
          local index = ARGV[2] .. user .. '}'
          \(indexLua(index: "index", id: "ARGV[3]", milliseconds: "ARGV[1]"))
          return ''
        end
        return user
        """)

    /// Deletes the record (only if its user is ARGV[1], when that is not `''`); returns its user id (`''` for none),
    /// or null when nothing was deleted. KEYS[1] = record. ARGV[2] and ARGV[3] as for ``touchScript``: on one
    /// server the script also removes the session from its user's index and returns `''`.
    static let deleteScript = RedisScript(
        """
        local ulen = tonumber(redis.call('GETRANGE', KEYS[1], 20, 24))
        local user = ''
        if ulen ~= nil and ulen > 0 then user = redis.call('GETRANGE', KEYS[1], 25, 24 + ulen) end
        if ARGV[1] ~= '' and ARGV[1] ~= user then return false end
        if redis.call('DEL', KEYS[1]) == 0 then return false end
        if ARGV[2] and user ~= '' then
          redis.call('SREM', ARGV[2] .. user .. '}', ARGV[3])
          return ''
        end
        return user
        """)

    /// Adds a session id to a user's index and makes the index live at least as long as that session.
    /// KEYS[1] = index; ARGV[1] = session id; ARGV[2] = TTL in ms.
    package static let indexScript = RedisScript(
        """
        \(indexLua(index: "KEYS[1]", id: "ARGV[1]", milliseconds: "ARGV[2]"))
        return 1
        """)
}
