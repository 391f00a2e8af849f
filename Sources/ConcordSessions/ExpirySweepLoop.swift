import Logging

/// The periodic expiry sweep of the stores that keep expired rows until deleted (SQLite, PostgreSQL): sleeps
/// `interval` on `clock`, sweeps, logs the outcome, until the task is cancelled. A failed sweep is logged and
/// the loop goes on: the next one catches up, and reads never return expired rows anyway.
public enum ExpirySweepLoop {
    public static func run(
        every interval: Duration,
        on clock: any Clock<Duration>,
        logger: Logger,
        sweep: () async throws -> Int
    ) async {
        while !Task.isCancelled {
            do {
                try await clock.sleep(for: interval)
            } catch {
                return
            }
            do {
                let deleted = try await sweep()
                logger.debug("swept expired sessions", metadata: ["deleted": "\(deleted)"])
            } catch {
                logger.warning("sweeping expired sessions failed", metadata: ["error": "\(error)"])
            }
        }
    }
}
