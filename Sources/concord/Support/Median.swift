extension Array where Element == Double {
    /// The middle value (the upper one of the two middles for an even count); `nan` when empty. Benchmarks report
    /// the median of interleaved rounds: one round disturbed by the machine's other work does not move it.
    var median: Double {
        isEmpty ? .nan : sorted()[count / 2]
    }
}
