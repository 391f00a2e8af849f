import ConcordHashing
import ConcordNetworking
import Logging
import NIOConcurrencyHelpers

/// Combines the proxy's three pieces (Pingora-style): membership (discovery: the static list, admin changes,
/// SIGHUP reloads), health (one ``HealthStateMachine`` per backend, keyed by backend id and carried over when
/// membership changes) and selection (an immutable `NodeSelection`, rebuilt only when the set of backends changes
/// and published by swapping one reference under the lock). A pick takes the first *ready* candidate.
///
/// Ready means up (health) and, for new keys, not draining. **Drain** is defined as: the backend gets no new
/// keys and no new sticky-cookie clients, but keeps what is bound to it while it is up —
/// requests whose sticky cookie names it, and in `hash` mode keys it served recently (the last two generations
/// of up to ``recentKeyCapacity`` distinct key hashes per backend). Every other key of a draining backend goes to
/// the key's next node, exactly as if it were down. Round-robin and least-conn never pick a draining backend.
public final class Balancer: Sendable {
    /// The result of a pick: the backend and what to count.
    public struct Pick: Sendable {
        let handle: BackendHandle
        /// True when the key's owner was not ready and the key went to a later candidate.
        public let remapped: Bool
        /// Sticky-cookie mode: the client's cookie did not name a usable backend, so the response sets a new one.
        public let setsStickyCookie: Bool

        public var backend: Backend { handle.backend }
        var counters: ProxyMetrics.BackendCounters { handle.counters }
        /// The backend's in-flight count, released without the balancer's lock.
        var load: BackendLoad { handle.load }
    }

    /// A backend's state as the admin API lists it.
    public struct Status: Sendable, Codable, Hashable {
        public let id: String
        /// "up", "down", or "pending" (added while running, first health check not done yet).
        public let state: String
        public let draining: Bool
        /// Requests (L7) or connections (L4) in flight to it, those waiting in its queue included.
        public let active: Int
        public let requests: Int
        /// Waiting for a slot under `limits.maxRequestsPerBackend` (0 without the limit).
        public let queued: Int
        /// What the last active health check said (`null` before the first).
        public let check: String?

        private enum CodingKeys: String, CodingKey { case id, state, draining, active, requests, queued, check }

        // (Synthesized encoding leaves a nil `check` out; a script reading `check` should find it, null.)
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(id, forKey: .id)
            try container.encode(state, forKey: .state)
            try container.encode(draining, forKey: .draining)
            try container.encode(active, forKey: .active)
            try container.encode(requests, forKey: .requests)
            try container.encode(queued, forKey: .queued)
            try container.encode(check, forKey: .check)
        }
    }

    /// Distinct key hashes remembered per backend per generation, for drain.
    public static let recentKeyCapacity = 65_536

    /// Immutable: a new one is built when backends are added, leave, or join (an added backend's first passing
    /// health check).
    private final class Membership: Sendable {
        let backends: [Backend]
        /// Over the backends that have joined (``HealthStateMachine/hasJoined``) only, so a backend added while
        /// running moves no key until its first health check passes, and then its keys move once (with a pending
        /// backend in the selection, jump and Maglev sent its keys to other nodes first, then again to it).
        let selection: (any NodeSelection)?
        let bounded: BoundedLoadSelector?
        /// The index in `backends` (and `State.runtime`) of each selection index.
        let selected: [Int]
        let indexByID: [String: Int]
        let indexByToken: [String: Int]

        /// `joined`: whether each backend has joined; nil, all of them.
        init(backends: [Backend], joined: [Bool]? = nil, algorithm: HashAlgorithm, boundedLoad: Double?) throws(ProxyError) {
            self.backends = backends
            selected = backends.indices.filter { joined?[$0] ?? true }
            let nodes = selected.map { Node(id: backends[$0].id) }
            do {
                let selection = nodes.isEmpty ? nil : try algorithm.makeSelection(nodes: nodes)
                self.selection = selection
                if let selection, let boundedLoad {
                    self.bounded = try BoundedLoadSelector(selection: selection, factor: boundedLoad)
                } else {
                    self.bounded = nil
                }
            } catch {
                throw .invalidSetting("cannot build the \(algorithm) selection: \(error)")
            }
            var byID: [String: Int] = [:]
            var byToken: [String: Int] = [:]
            for (index, backend) in backends.enumerated() {
                byID[backend.id] = index
                byToken[StickyCookie.token(for: backend)] = index
            }
            self.indexByID = byID
            self.indexByToken = byToken
        }
    }

    private struct Runtime {
        var health: HealthStateMachine
        var draining = false
        /// The backend, its counters and its requests/connections in flight and picks so far (atomics, so that a
        /// finished request does not take the balancer's lock: two event loops contending for it per request put
        /// waiters to sleep for milliseconds).
        let handle: BackendHandle
        var recentKeys = RecentKeys()
        /// The last active probe's detail (the admin API's `check`).
        var lastCheck: String?

        init(health: HealthStateMachine, backend: Backend, counters: ProxyMetrics.BackendCounters) {
            self.health = health
            self.handle = BackendHandle(backend: backend, counters: counters)
        }

        var load: BackendLoad { handle.load }
        var active: Int { load.active }

        var isUp: Bool { health.isUp }
        var takesNewWork: Bool { health.isUp && !draining }
    }

    private struct RecentKeys {
        var current = Set<UInt64>()
        var previous = Set<UInt64>()

        mutating func insert(_ key: UInt64) {
            if current.count >= Balancer.recentKeyCapacity {
                previous = current
                current = Set(minimumCapacity: 1024)
            }
            current.insert(key)
        }

        func contains(_ key: UInt64) -> Bool { current.contains(key) || previous.contains(key) }
    }

    private struct State {
        var membership: Membership
        var runtime: [Runtime]
        var nextRoundRobin = 0
        var algorithm: HashAlgorithm
        var boundedLoad: Double?
        var health: HealthCheckConfiguration
    }

    let metrics: ProxyMetrics
    private let logger: Logger
    /// Failures on this machine, not at a backend: reported here instead of to a backend's health.
    let localResources: LocalResourceAlarm
    private let state: NIOLockedValueBox<State>
    /// Serializes membership changes (admin API, reloads): each reads the current settings and publishes new ones,
    /// so two at once could lose one. Picks never take it.
    private let changes = NIOLock()
    /// Where backends added while running (pending) go: the running health checker's stream (``joiningBackends()``).
    private let joiningSubscriber = NIOLockedValueBox<AsyncStream<BackendHandle>.Continuation?>(nil)

    public init(backends: [HostPort], algorithm: HashAlgorithm, boundedLoad: Double?, health: HealthCheckConfiguration,
                metrics: ProxyMetrics, logger: Logger) throws(ProxyError) {
        self.metrics = metrics
        self.logger = logger
        self.localResources = LocalResourceAlarm(
            counter: metrics.localResourceFailures, logger: logger, remedy: "or lower limits.maxConnections (--max-connections)")
        var resolved: [Backend] = []
        for address in backends { resolved.append(try Backend(address: address)) }
        let membership = try Membership(backends: resolved, algorithm: algorithm, boundedLoad: boundedLoad)
        let runtime = resolved.map {
            Runtime(health: HealthStateMachine(health), backend: $0, counters: metrics.backend($0.id))
        }
        self.state = NIOLockedValueBox(State(
            membership: membership, runtime: runtime, algorithm: algorithm, boundedLoad: boundedLoad, health: health))
    }

    deinit { joiningSubscriber.withLockedValue { $0?.finish() } }

    /// The backends added from now on (pending), for the health checker to probe at once instead of at its next
    /// round. One subscriber at a time: a new call ends the previous stream (a stopped server's checker was cancelled,
    /// and cancelling an `AsyncStream`'s iteration finishes it, so each run subscribes anew).
    func joiningBackends() -> AsyncStream<BackendHandle> {
        let (stream, continuation) = AsyncStream.makeStream(of: BackendHandle.self, bufferingPolicy: .bufferingNewest(1024))
        joiningSubscriber.withLockedValue { subscriber in
            subscriber?.finish()
            subscriber = continuation
        }
        return stream
    }

    /// Key→backend algorithm for `hash` (changed by ``reconfigure(backends:algorithm:boundedLoad:health:)``).
    public var algorithm: HashAlgorithm { state.withLockedValue { $0.algorithm } }
    /// Bounded-load factor, if any.
    public var boundedLoad: Double? { state.withLockedValue { $0.boundedLoad } }
    /// Active and passive health settings; ``HealthChecker`` reads them at every round.
    public var healthConfiguration: HealthCheckConfiguration { state.withLockedValue { $0.health } }

    // MARK: Picks

    /// `hash`: the first ready candidate of the key's preference list, skipping `excluding` (a retry).
    public func pick(keyHash: UInt64, excluding: Backend? = nil) -> Pick? {
        counted(state.withLockedValue { state in
            let membership = state.membership
            guard let selection = membership.selection else { return nil }
            let excluded = excluding.flatMap { membership.indexByID[$0.id] }
            // `s`: a selection index.
            func ready(_ s: Int) -> Bool {
                let i = membership.selected[s]
                guard i != excluded else { return false }
                let r = state.runtime[i]
                return r.isUp && (!r.draining || r.recentKeys.contains(keyHash))
            }
            var chosen: Int?
            if let bounded = membership.bounded {
                var total = 0
                for r in state.runtime { total += r.active }
                let candidate = bounded.pick(for: keyHash, totalLoad: total) { s in
                    ready(s) ? state.runtime[membership.selected[s]].active : Int.max / 2
                }
                if ready(candidate) { chosen = candidate }
            }
            if chosen == nil { chosen = selection.firstReady(for: keyHash, where: ready) }
            guard let chosen else { return nil }
            let remapped = chosen != selection.ownerIndex(for: keyHash)
            let index = membership.selected[chosen]
            state.runtime[index].recentKeys.insert(keyHash)
            return Self.take(index, in: &state, remapped: remapped, setsCookie: false)
        })
    }

    /// `round-robin`: the next backend that takes new work.
    public func pickRoundRobin(excluding: Backend? = nil) -> Pick? {
        counted(state.withLockedValue { state in
            guard let index = Self.nextRoundRobin(in: &state, excluding: excluding) else { return nil }
            return Self.take(index, in: &state, remapped: false, setsCookie: false)
        })
    }

    /// `least-conn`: the backend with the fewest requests/connections in flight; ties rotate.
    public func pickLeastConnections(excluding: Backend? = nil) -> Pick? {
        counted(state.withLockedValue { state in
            let n = state.runtime.count
            guard n > 0 else { return nil }
            let excluded = excluding.flatMap { state.membership.indexByID[$0.id] }
            let start = state.nextRoundRobin % n
            state.nextRoundRobin &+= 1
            var best: Int?
            for step in 0..<n {
                let i = (start + step) % n
                guard i != excluded, state.runtime[i].takesNewWork else { continue }
                if best == nil || state.runtime[i].active < state.runtime[best!].active { best = i }
            }
            guard let index = best else { return nil }
            return Self.take(index, in: &state, remapped: false, setsCookie: false)
        })
    }

    /// `sticky-cookie`: the backend the cookie token names if it is up (draining included: drain keeps bound
    /// clients), else the next round-robin backend and a new cookie.
    public func pick(stickyToken: Substring?, excluding: Backend? = nil) -> Pick? {
        counted(state.withLockedValue { state in
            if let stickyToken, let index = state.membership.indexByToken[String(stickyToken)],
               state.runtime[index].isUp, state.membership.backends[index] != excluding {
                return Self.take(index, in: &state, remapped: false, setsCookie: false)
            }
            guard let index = Self.nextRoundRobin(in: &state, excluding: excluding) else { return nil }
            return Self.take(index, in: &state, remapped: stickyToken != nil, setsCookie: true)
        })
    }

    private static func nextRoundRobin(in state: inout State, excluding: Backend?) -> Int? {
        let n = state.runtime.count
        guard n > 0 else { return nil }
        let excluded = excluding.flatMap { state.membership.indexByID[$0.id] }
        for _ in 0..<n {
            let i = state.nextRoundRobin % n
            state.nextRoundRobin &+= 1
            if i != excluded && state.runtime[i].takesNewWork { return i }
        }
        return nil
    }

    /// Counts the pick as in flight. Its metrics are counted by ``counted(_:)`` once the lock is released.
    private static func take(_ index: Int, in state: inout State, remapped: Bool, setsCookie: Bool) -> Pick {
        let handle = state.runtime[index].handle
        handle.load.began()
        return Pick(handle: handle, remapped: remapped, setsStickyCookie: setsCookie)
    }

    /// Metrics of a pick, outside the lock (the less work under it, the less the two event loops wait).
    private func counted(_ pick: Pick?) -> Pick? {
        guard let pick else { return nil }
        pick.counters.requests.increment()
        if pick.remapped { metrics.keysRemapped.increment() }
        return pick
    }

    /// The request or connection of a pick finished (load accounting for least-conn and bounded load).
    public func release(_ pick: Pick) {
        pick.load.ended()
    }

    // MARK: Health

    /// Real traffic could not connect to `backend` (passive check). `reason` is the log line's: a refused or timed-out
    /// connect, or a connection opened for a request that closed before any response byte.
    public func recordConnectFailure(_ backend: Backend, reason: String = "connect failed (passive check)") {
        metrics.backend(backend.id).connectFailures.increment()
        let flip = state.withLockedValue { state -> HealthStateMachine.Flip? in
            guard let index = state.membership.indexByID[backend.id] else { return nil }
            return state.runtime[index].health.recordConnectFailure()
        }
        report(flip, backend: backend.id, reason: reason)
    }

    /// Real traffic connected to `backend`.
    public func recordConnectSuccess(_ backend: Backend) {
        state.withLockedValue { state in
            if let index = state.membership.indexByID[backend.id] { state.runtime[index].health.recordConnectSuccess() }
        }
    }

    /// What the health checker probes: each backend's handle, which names the backend *as added* — one removed and
    /// added again is a new handle, so a probe of the earlier one still in flight does not decide the new one.
    var probeTargets: [BackendHandle] { state.withLockedValue { $0.runtime.map(\.handle) } }

    /// One active probe's result, for the backend `handle` was taken from (dropped if it left meanwhile, even if a
    /// backend of the same address was added since: that one gets its own first probe).
    func recordProbe(_ handle: BackendHandle, success: Bool, detail: String) {
        let id = handle.backend.id
        let flip = state.withLockedValue { state -> HealthStateMachine.Flip? in
            guard let index = state.membership.indexByID[id], state.runtime[index].handle === handle else { return nil }
            state.runtime[index].lastCheck = detail
            return state.runtime[index].health.recordProbe(success: success)
        }
        report(flip, backend: id, reason: detail)
        if flip == .joined || flip == .wentUp { spreadKeysOverJoinedBackends() }
    }

    /// One probe's result for the backend listed now under `backend`'s id.
    public func recordProbe(_ backend: Backend, success: Bool, detail: String) {
        if let handle = handle(of: backend.id) { recordProbe(handle, success: success, detail: detail) }
    }

    /// The handle of the backend listed now under `id`.
    private func handle(of id: String) -> BackendHandle? {
        state.withLockedValue { state in state.membership.indexByID[id].map { state.runtime[$0].handle } }
    }

    /// Rebuilds the selection when a backend has joined since it was built (its first passing health check).
    private func spreadKeysOverJoinedBackends() {
        changes.lock()
        defer { changes.unlock() }
        let (membership, joined, algorithm, boundedLoad) = state.withLockedValue {
            ($0.membership, $0.runtime.map(\.health.hasJoined), $0.algorithm, $0.boundedLoad)
        }
        guard membership.selected != joined.indices.filter({ joined[$0] }) else { return }
        // (`changes` is held, so the list is still `membership.backends` when the new selection is published.)
        do {
            let rebuilt = try Membership(backends: membership.backends, joined: joined, algorithm: algorithm, boundedLoad: boundedLoad)
            state.withLockedValue { $0.membership = rebuilt }
        } catch {
            logger.error("cannot spread keys over the joined backends: \(error); the new backends stay out")
        }
    }

    private func report(_ flip: HealthStateMachine.Flip?, backend id: String, reason: String) {
        guard let flip else { return }
        switch flip {
        case .wentDown:
            logger.warning("backend \(id) is DOWN: \(reason); its keys go to their next node")
            metrics.healthTransition(backend: id, to: "down")
            if let handle = handle(of: id) { redispatchQueue(of: handle, because: "is down") }
        case .wentUp:
            logger.notice("backend \(id) is UP again: \(reason); its keys return")
            metrics.healthTransition(backend: id, to: "up")
        case .joined:
            logger.notice("backend \(id) is up for the first time since it was added (\(reason)): it takes its keys")
            metrics.healthTransition(backend: id, to: "up")
        case .confirmed:
            logger.notice("backend \(id) passed its first health check (\(reason)); it has served since it was added, as no other backend was up")
        case .failedFirstCheck:
            logger.warning("backend \(id) failed its first health check: \(reason); it stays out until it passes \(healthConfiguration.rise) in a row")
            metrics.healthTransition(backend: id, to: "down")
            // (A provisional one may have queued requests; a pending one has none.)
            if let handle = handle(of: id) { redispatchQueue(of: handle, because: "failed its first health check") }
        }
    }

    /// Requests waiting for `handle`'s backend pick again: it went down or left, and a queued request has not
    /// reached it yet, so it goes to its key's next node like a new one.
    private func redispatchQueue(of handle: BackendHandle, because reason: String) {
        let count = handle.admission.redispatchAll()
        guard count > 0 else { return }
        metrics.redispatched.increment(by: Int64(count))
        logger.notice("backend \(handle.backend.id) \(reason): \(count) queued request(s) go to their next node")
    }

    // MARK: Membership

    /// Current backends (for health checks and the admin API).
    public var backends: [Backend] { state.withLockedValue { $0.membership.backends } }

    public func statuses() -> [Status] {
        state.withLockedValue { state in
            zip(state.membership.backends, state.runtime).map { backend, r in
                Status(id: backend.id, state: r.health.stateName, draining: r.draining, active: r.active, requests: r.load.requests,
                       queued: r.handle.admission.queued, check: r.lastCheck)
            }
        }
    }

    /// Adds a backend at the end of the list (its keys come from every other backend, ≈1/(n+1) of them, once its
    /// first health check passes: it starts pending).
    public func add(_ address: HostPort) throws(ProxyError) {
        changes.lock()
        defer { changes.unlock() }
        let current = backends.map(\.address)
        guard !current.contains(address) else { throw .duplicateBackend(address.description) }
        guard address.port != 0 else { throw .invalidAddress(address.description, reason: "backend port 0") }
        try apply(backends: current + [address])
    }

    /// Removes a backend (its keys go to their next nodes; requests in flight to it finish).
    public func remove(id: String) throws(ProxyError) {
        changes.lock()
        defer { changes.unlock() }
        let current = backends.map(\.address)
        guard current.contains(where: { $0.description == id }) else { throw .unknownBackend(id) }
        try apply(backends: current.filter { $0.description != id })
    }

    /// Starts or ends draining a backend (see the type's documentation for what drain keeps).
    public func setDraining(id: String, _ draining: Bool) throws(ProxyError) {
        let found = state.withLockedValue { state -> Bool in
            guard let index = state.membership.indexByID[id] else { return false }
            state.runtime[index].draining = draining
            return true
        }
        guard found else { throw .unknownBackend(id) }
        logDrain(id: id, draining)
    }

    /// Makes exactly the backends in `ids` draining (a reload's `drain` list): listed ones start draining, others
    /// that were draining stop. Unknown ids are ignored (``ProxyConfiguration/validate()`` rejects them).
    public func setDraining(exactly ids: Set<String>) {
        let changed = state.withLockedValue { state -> [(String, Bool)] in
            var changed: [(String, Bool)] = []
            for (index, backend) in state.membership.backends.enumerated() {
                let draining = ids.contains(backend.id)
                if state.runtime[index].draining != draining {
                    state.runtime[index].draining = draining
                    changed.append((backend.id, draining))
                }
            }
            return changed
        }
        for (id, draining) in changed { logDrain(id: id, draining) }
    }

    private func logDrain(id: String, _ draining: Bool) {
        logger.notice("backend \(id) \(draining ? "is draining: no new keys, bound sessions stay" : "is no longer draining")")
        if draining, !hasBackendTakingNewWork {
            logger.warning("no backend takes new users now (every other one is down, draining or pending): requests with no bound backend get 503")
        }
    }

    /// Whether some backend is up and not draining (new keys and new sticky clients have somewhere to go).
    var hasBackendTakingNewWork: Bool { state.withLockedValue { $0.runtime.contains(where: \.takesNewWork) } }

    /// Sets the backend list (admin changes). Rebuilds the selection only when the list differs; health, drain
    /// and load carry over by backend id.
    public func replaceBackends(_ addresses: [HostPort]) throws(ProxyError) {
        changes.lock()
        defer { changes.unlock() }
        try apply(backends: addresses)
    }

    /// Sets everything a reload may change at once: the backend list (`nil` keeps the current one), the
    /// algorithm, the bounded-load factor and the health settings. The selection is rebuilt only when the list, the
    /// algorithm or the factor differs; health (up/down and the current streaks, under the new `rise`/`fall`),
    /// drain and load carry over by backend id. Nothing changes when it throws.
    public func reconfigure(backends addresses: [HostPort]?, algorithm: HashAlgorithm, boundedLoad: Double?,
                            health: HealthCheckConfiguration) throws(ProxyError) {
        changes.lock()
        defer { changes.unlock() }
        try apply(backends: addresses ?? backends.map(\.address), algorithm: algorithm, boundedLoad: boundedLoad, health: health)
    }

    /// A membership change that keeps the other settings; the caller holds `changes`.
    private func apply(backends addresses: [HostPort]) throws(ProxyError) {
        let (algorithm, boundedLoad, health) = state.withLockedValue { ($0.algorithm, $0.boundedLoad, $0.health) }
        try apply(backends: addresses, algorithm: algorithm, boundedLoad: boundedLoad, health: health)
    }

    /// The body of every membership change; the caller holds `changes`.
    private func apply(backends addresses: [HostPort], algorithm: HashAlgorithm, boundedLoad: Double?,
                       health: HealthCheckConfiguration) throws(ProxyError) {
        var seen = Set<HostPort>()
        for address in addresses where !seen.insert(address).inserted { throw .duplicateBackend(address.description) }
        let current = state.withLockedValue { ($0.membership.backends.map(\.address), $0.algorithm, $0.boundedLoad) }
        guard current != (addresses, algorithm, boundedLoad) else {
            state.withLockedValue { state in
                state.health = health
                for i in state.runtime.indices { state.runtime[i].health.adopt(health) }
            }
            return
        }
        var resolved: [Backend] = []
        var byServer: [String: HostPort] = [:]
        for address in addresses {
            let backend = try Backend(address: address)
            // Two names of one server (localhost:8080 beside 127.0.0.1:8080) would give it two shares of the keys.
            let server = "\(backend.socketAddress.ipAddress ?? address.host):\(address.port)"
            if let other = byServer.updateValue(address, forKey: server) {
                throw .duplicateBackend("\(address) (the same server as \(other): \(server))")
            }
            resolved.append(backend)
        }
        // Carried backends keep whether they joined. Added ones are pending (not joined) while a staying backend is
        // up; when none is (a reload that replaces every backend, a pool that is empty or all down), they start
        // provisional — joined and up — since keeping them out until a probe passed would only mean 503s meanwhile.
        // (Up and not draining: a draining backend takes no new users either.)
        let carriedByID = state.withLockedValue { state in
            Dictionary(uniqueKeysWithValues: zip(state.membership.backends, state.runtime).map {
                ($0.id, (joined: $1.health.hasJoined, takesNewWork: $1.takesNewWork))
            })
        }
        let provisional = !resolved.contains { carriedByID[$0.id]?.takesNewWork == true }
        let membership = try Membership(backends: resolved, joined: resolved.map { carriedByID[$0.id]?.joined ?? provisional },
                                        algorithm: algorithm, boundedLoad: boundedLoad)
        let countersByID = Dictionary(uniqueKeysWithValues: resolved.map { ($0.id, metrics.backend($0.id)) })
        let (before, after, left, handles) = state.withLockedValue { state -> ([String], [String], [BackendHandle], [BackendHandle]) in
            let before = state.membership.backends.map(\.id)
            var carried: [String: Runtime] = [:]
            for (backend, runtime) in zip(state.membership.backends, state.runtime) { carried[backend.id] = runtime }
            state.runtime = resolved.map { backend in
                var runtime = carried[backend.id]
                    ?? Runtime(health: HealthStateMachine(addedWith: health, provisional: provisional), backend: backend, counters: countersByID[backend.id]!)
                runtime.health.adopt(health)
                return runtime
            }
            let staying = Set(resolved.map(\.id))
            let left = carried.filter { !staying.contains($0.key) }.map(\.value.handle)
            state.membership = membership
            state.algorithm = algorithm
            state.boundedLoad = boundedLoad
            state.health = health
            return (before, resolved.map(\.id), left, state.runtime.map(\.handle))
        }
        for handle in left { redispatchQueue(of: handle, because: "was removed") }
        let added = after.filter { !before.contains($0) }
        if let subscriber = joiningSubscriber.withLockedValue({ $0 }) {
            for handle in handles where added.contains(handle.backend.id) { subscriber.yield(handle) }
        }
        let removed = before.filter { !after.contains($0) }
        if added.isEmpty && removed.isEmpty && before == after {
            logger.notice("selection rebuilt: algorithm \(algorithm), bounded load \(boundedLoad.map { "\($0)" } ?? "off")")
        } else {
            let joining = added.isEmpty ? "" : provisional
                ? ", serving at once as no other backend is up; out if their first health check fails"
                : ", in once their first health check passes"
            let line: Logger.Message = "backends changed: \(after.count) now (added \(added.isEmpty ? "none" : added.joined(separator: ", "))\(joining); removed \(removed.isEmpty ? "none" : removed.joined(separator: ", ")))"
            // An empty pool is allowed (backends may be added again through the admin API), but every request now
            // gets 503: worth more than a notice.
            if after.isEmpty { logger.warning("\(line); no backend is left, so every request gets 503 until one is added") } else { logger.notice(line) }
        }
    }
}

extension Balancer {
    /// An L4 connection's backend: by its client-IP hash (`keyHash`; round-robin without one), round-robin or
    /// least connections (`sticky-cookie` has no cookie to read at L4: round-robin).
    func pickConnection(balance: BalanceStrategy, keyHash: UInt64?, excluding: Backend?) -> Pick? {
        switch balance {
        case .hash:
            if let keyHash { return pick(keyHash: keyHash, excluding: excluding) }
            return pickRoundRobin(excluding: excluding)
        case .leastConn: return pickLeastConnections(excluding: excluding)
        case .roundRobin, .stickyCookie: return pickRoundRobin(excluding: excluding)
        }
    }
}
