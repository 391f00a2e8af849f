import ConcordRedis
import Testing

@Suite(.timeLimit(.minutes(3))) struct RedisClusterSlotTests {
    /// Reference values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
    @Test func matchesRedisKeySlots() {
        #expect(RedisClusterSlot.slot(forKey: "123456789") == 0x31C3 % 16384)
        #expect(RedisClusterSlot.slot(forKey: "foo") == 12182)
        #expect(RedisClusterSlot.slot(forKey: "bar") == 5061)
        #expect(RedisClusterSlot.slot(forKey: "") == 0)
    }

    @Test func hashTagsPinKeysToOneSlot() {
        let tagged = RedisClusterSlot.slot(forKey: "user1000")
        #expect(RedisClusterSlot.slot(forKey: "{user1000}.following") == tagged)
        #expect(RedisClusterSlot.slot(forKey: "concord:session:{user1000}") == tagged)
        // An empty tag does not count: the whole key is hashed.
        #expect(RedisClusterSlot.slot(forKey: "foo{}{bar}") == RedisClusterSlot.slot(forKey: "foo{}{bar}".utf8))
        #expect(RedisClusterSlot.slot(forKey: "foo{}{bar}") != RedisClusterSlot.slot(forKey: "bar"))
        // Only the first tag counts.
        #expect(RedisClusterSlot.slot(forKey: "foo{{bar}}zap") == RedisClusterSlot.slot(forKey: "{bar"))
    }
}
