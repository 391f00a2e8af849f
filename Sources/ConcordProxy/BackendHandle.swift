/// What every pick of one backend shares: the backend, its metrics counters and its load. A pick carries this one
/// reference instead of the backend's strings and each counter, so handing a pick around (and ending it) costs one
/// retain and release per request instead of one per field. Kept across membership changes while the backend stays.
final class BackendHandle: Sendable {
    let backend: Backend
    let counters: ProxyMetrics.BackendCounters
    let load = BackendLoad()
    /// Slots and queue under `limits.maxRequestsPerBackend` (untouched while no limit is set).
    let admission = BackendAdmission()

    init(backend: Backend, counters: ProxyMetrics.BackendCounters) {
        self.backend = backend
        self.counters = counters
    }
}
