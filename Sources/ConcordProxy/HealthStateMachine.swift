/// Up/down state of one backend with hysteresis: it flips only after `fall` consecutive failures (up → down) or
/// `rise` consecutive successes (down → up), so one lost probe does not move keys. Passive ejection (real traffic
/// failing to connect) takes a backend down at once after `ejectAfter` consecutive connect failures.
///
/// A backend added while the proxy runs (admin API, reload) starts *pending*: out of selection until its first
/// probe, which decides alone — up on success whatever `rise` is, down on failure (then `rise` successes as usual).
/// Envoy does the same for a new host (its `first_check` bypasses the healthy threshold). Backends of the starting
/// configuration start up, so the proxy serves at once. A backend added when no other is up starts *provisional*:
/// up and in the selection at once (keeping it out would only turn every request into a 503), and its first probe
/// still decides alone — a failure takes it down without waiting for `fall`.
public struct HealthStateMachine: Sendable, Hashable {
    /// A change of state, reported once (the caller logs one line and counts it).
    public enum Flip: Sendable, Hashable {
        case wentUp
        case wentDown
        /// A backend added while running is up for the first time: it passed its first probe, or `rise` probes in a
        /// row after failing the first.
        case joined
        /// A provisional backend passed its first probe: it stays up.
        case confirmed
        /// A pending or provisional backend failed its first probe: it is (or stays) out, down.
        case failedFirstCheck
    }

    public private(set) var rise: Int
    public private(set) var fall: Int
    public private(set) var ejectAfter: Int
    public private(set) var isUp: Bool
    /// Added while running and not probed yet (not up either).
    public private(set) var isPending: Bool
    /// Added while running, not probed yet, and up meanwhile because no other backend was (see the type).
    public private(set) var isProvisional = false
    /// Up at least once since it was added (always, for a backend of the starting configuration): only such a
    /// backend has a share of the keys, so one that never came up moves no key.
    public private(set) var hasJoined: Bool
    private var successes = 0
    private var failures = 0
    private var connectFailures = 0

    /// Backends start up: traffic flows at once, and the first `fall` failed probes (or one refused connect) eject.
    public init(rise: Int, fall: Int, ejectAfter: Int, isUp: Bool = true) {
        self.rise = max(1, rise)
        self.fall = max(1, fall)
        self.ejectAfter = ejectAfter
        self.isUp = isUp
        self.isPending = false
        self.hasJoined = true
    }

    /// A backend added while running: out until its first probe decides.
    public static func pending(rise: Int, fall: Int, ejectAfter: Int) -> HealthStateMachine {
        var machine = HealthStateMachine(rise: rise, fall: fall, ejectAfter: ejectAfter, isUp: false)
        machine.isPending = true
        machine.hasJoined = false
        return machine
    }

    /// Starts up (or pending) with the thresholds of `configuration`.
    init(_ configuration: HealthCheckConfiguration, pending: Bool = false) {
        self.init(rise: configuration.rise, fall: configuration.fall, ejectAfter: configuration.ejectAfterConnectFailures)
        if pending {
            isUp = false
            isPending = true
            hasJoined = false
        }
    }

    /// A backend added while running when no other backend was up: up at once, its first probe decides alone.
    public static func provisional(rise: Int, fall: Int, ejectAfter: Int) -> HealthStateMachine {
        var machine = HealthStateMachine(rise: rise, fall: fall, ejectAfter: ejectAfter)
        machine.isProvisional = true
        return machine
    }

    /// Starts as a backend added while running: pending, or provisional when `provisional`.
    init(addedWith configuration: HealthCheckConfiguration, provisional: Bool) {
        self.init(configuration, pending: !provisional)
        isProvisional = provisional
    }

    /// "up", "down" or "pending" (the admin API's `state`).
    public var stateName: String { isPending ? "pending" : isUp ? "up" : "down" }

    /// Takes new thresholds (a reload) and keeps the state and the current streaks: a backend that is down stays
    /// down until `rise` successes in a row, counting those it already had.
    mutating func adopt(_ configuration: HealthCheckConfiguration) {
        rise = max(1, configuration.rise)
        fall = max(1, configuration.fall)
        ejectAfter = configuration.ejectAfterConnectFailures
    }

    /// The result of one active probe.
    public mutating func recordProbe(success: Bool) -> Flip? {
        if isPending {
            isPending = false
            isUp = success
            hasJoined = success
            successes = success ? 1 : 0
            failures = success ? 0 : 1
            return success ? .joined : .failedFirstCheck
        }
        if isProvisional {
            isProvisional = false
            isUp = success
            successes = success ? 1 : 0
            failures = success ? 0 : 1
            return success ? .confirmed : .failedFirstCheck
        }
        if success {
            failures = 0
            successes += 1
            if !isUp && successes >= rise {
                isUp = true
                connectFailures = 0
                // (One that failed its first check takes its keys for the first time: it joins, it does not return.)
                defer { hasJoined = true }
                return hasJoined ? .wentUp : .joined
            }
        } else {
            successes = 0
            failures += 1
            if isUp && failures >= fall {
                isUp = false
                return .wentDown
            }
        }
        return nil
    }

    /// Real traffic could not connect (passive check).
    public mutating func recordConnectFailure() -> Flip? {
        // (A pending backend gets no traffic; a late connect of before it left and came back is not a verdict.)
        if isPending { return nil }
        successes = 0
        connectFailures += 1
        if isUp && ejectAfter > 0 && connectFailures >= ejectAfter {
            isUp = false
            return .wentDown
        }
        return nil
    }

    /// Real traffic connected: the passive failure streak ends.
    public mutating func recordConnectSuccess() {
        connectFailures = 0
    }
}
