extension Duration {
    /// Whole milliseconds, clamped to `0...Int64.max`: how stores write a TTL (a negative TTL means "already
    /// expired"; an absurdly long one does not overflow).
    public var clampedMilliseconds: Int64 {
        let (seconds, attoseconds) = components
        guard seconds >= 0 else { return 0 }
        let (milliseconds, overflow) = seconds.multipliedReportingOverflow(by: 1000)
        guard !overflow else { return .max }
        let (total, overflowAgain) = milliseconds.addingReportingOverflow(attoseconds / 1_000_000_000_000_000)
        return overflowAgain ? .max : total
    }
}
