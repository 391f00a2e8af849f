import Testing

/// Polls `condition` every 20 ms until it holds or `timeout` passes, and returns whether it held. For tests that
/// wait for something another thread or process does: the timeout is generous, reached only when the test fails,
/// so a loaded machine never turns a slow moment into a failure (a fixed sleep would).
public func eventually(timeout: Duration = .seconds(10), _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now.advanced(by: timeout)
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return try await condition()
}

/// ``eventually`` for a test that cannot go on without the condition: records an issue at the caller when it never
/// held within `timeout`.
public func waitUntil(
    timeout: Duration = .seconds(10), sourceLocation: SourceLocation = #_sourceLocation,
    _ condition: () async throws -> Bool
) async throws {
    if try await eventually(timeout: timeout, condition) { return }
    Issue.record("condition not met within \(timeout)", sourceLocation: sourceLocation)
}
