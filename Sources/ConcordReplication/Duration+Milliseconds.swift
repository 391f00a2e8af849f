extension Duration {
    /// Whole milliseconds, rounded down, never negative (TTLs and lifetimes).
    var nonNegativeMilliseconds: UInt64 {
        let (seconds, attoseconds) = components
        guard seconds >= 0 else { return 0 }
        return UInt64(seconds) * 1000 + UInt64(attoseconds / 1_000_000_000_000_000)
    }
}
