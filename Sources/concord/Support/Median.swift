extension Array where Element == Double {
    /// The middle value (the mean of the two middles for an even count); `nan` when empty. Benchmarks report the
    /// median of interleaved rounds: one round disturbed by the machine's other work does not move it. (Until
    /// 2026-12-03 an even count took the upper middle: with `--rounds 2` the better round.)
    var median: Double {
        guard !isEmpty else { return .nan }
        let sorted = sorted()
        return count % 2 == 1 ? sorted[count / 2] : (sorted[count / 2 - 1] + sorted[count / 2]) / 2
    }
}
