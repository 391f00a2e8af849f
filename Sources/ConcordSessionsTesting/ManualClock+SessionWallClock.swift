import ConcordSessions

extension ManualClock {
    /// A wall clock that moves with this clock, starting at `start` (ms since 1970), so session timestamps,
    /// sealed-cookie expiry and store TTLs all follow one test-controlled time.
    public func wallClock(startingAt start: Int64 = 1_767_225_600_000) -> SessionWallClock {
        SessionWallClock {
            let (seconds, attoseconds) = self.now.offset.components
            return start + seconds * 1000 + attoseconds / 1_000_000_000_000_000
        }
    }
}
