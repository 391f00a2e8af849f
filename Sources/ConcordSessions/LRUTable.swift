/// A dictionary that remembers use order: O(1) lookup, insert, remove, "mark as used" and "least recently used".
///
/// Entries live in an array of slots linked into a doubly linked list by index (most recent at `head`), so no
/// per-entry allocation happens after warm-up; freed slots are reused. Not thread-safe: owners guard it.
struct LRUTable<Key: Hashable, Value> {
    private struct Slot {
        var key: Key
        var value: Value
        var previous: Int  // towards head (more recent); -1 at head
        var next: Int  // towards tail (less recent); -1 at tail
    }

    private var indexByKey: [Key: Int] = [:]
    private var slots: [Slot?] = []
    private var freeSlots: [Int] = []
    private var head = -1
    private var tail = -1

    var count: Int { indexByKey.count }

    /// The value for `key` without changing its recency.
    func peek(_ key: Key) -> Value? {
        guard let index = indexByKey[key] else { return nil }
        return slots[index]!.value  // `?.value` copied the whole slot (key included) first
    }

    /// The value for `key`, marking it most recently used.
    mutating func use(_ key: Key) -> Value? {
        guard let index = indexByKey[key] else { return nil }
        moveToHead(index)
        return slots[index]!.value
    }

    /// Where `key` lives (valid until the table changes), for a caller that reads and marks it in one lookup.
    func index(of key: Key) -> Int? {
        indexByKey[key]
    }

    /// The value at an index from ``index(of:)``.
    subscript(index: Int) -> Value {
        slots[index]!.value
    }

    /// Marks the entry at an index from ``index(of:)`` most recently used.
    mutating func markUsed(_ index: Int) {
        moveToHead(index)
    }

    /// Changes the value of an existing `key` in place (marking it used); `false` when absent.
    mutating func modify<R>(_ key: Key, _ body: (inout Value) -> R) -> R? {
        guard let index = indexByKey[key] else { return nil }
        moveToHead(index)
        return body(&slots[index]!.value)
    }

    /// Inserts or replaces `key` as the most recently used entry.
    mutating func set(_ key: Key, _ value: Value) {
        if let index = indexByKey[key] {
            slots[index]!.value = value
            moveToHead(index)
            return
        }
        let slot = Slot(key: key, value: value, previous: -1, next: head)
        let index: Int
        if let reused = freeSlots.popLast() {
            index = reused
            slots[index] = slot
        } else {
            index = slots.count
            slots.append(slot)
        }
        if head >= 0 { slots[head]!.previous = index }
        head = index
        if tail < 0 { tail = index }
        indexByKey[key] = index
    }

    @discardableResult
    mutating func remove(_ key: Key) -> Value? {
        guard let index = indexByKey.removeValue(forKey: key) else { return nil }
        unlink(index)
        let value = slots[index]!.value
        slots[index] = nil
        freeSlots.append(index)
        return value
    }

    /// The least recently used entry.
    var leastRecent: (key: Key, value: Value)? {
        guard tail >= 0, let slot = slots[tail] else { return nil }
        return (slot.key, slot.value)
    }

    /// Keys whose value satisfies `predicate` (used by sweeps; O(n)).
    func keys(where predicate: (Value) -> Bool) -> [Key] {
        slots.compactMap { slot in slot.flatMap { predicate($0.value) ? $0.key : nil } }
    }

    private mutating func unlink(_ index: Int) {
        let slot = slots[index]!
        if slot.previous >= 0 { slots[slot.previous]!.next = slot.next } else { head = slot.next }
        if slot.next >= 0 { slots[slot.next]!.previous = slot.previous } else { tail = slot.previous }
    }

    private mutating func moveToHead(_ index: Int) {
        guard index != head else { return }
        unlink(index)
        slots[index]!.previous = -1
        slots[index]!.next = head
        if head >= 0 { slots[head]!.previous = index }
        head = index
        if tail < 0 { tail = index }
    }
}
