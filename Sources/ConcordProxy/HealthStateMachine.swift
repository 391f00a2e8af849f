/// Up/down state of one backend with hysteresis: it flips only after `fall` consecutive failures (up → down) or
/// `rise` consecutive successes (down → up), so one lost probe does not move keys. Passive ejection (real traffic
/// failing to connect) takes a backend down at once after `ejectAfter` consecutive connect failures.
public struct HealthStateMachine: Sendable, Hashable {
    /// A change of state, reported once (the caller logs one line and counts it).
    public enum Flip: Sendable, Hashable {
        case wentUp
        case wentDown
    }

    public private(set) var rise: Int
    public private(set) var fall: Int
    public private(set) var ejectAfter: Int
    public private(set) var isUp: Bool
    private var successes = 0
    private var failures = 0
    private var connectFailures = 0

    /// Backends start up: traffic flows at once, and the first `fall` failed probes (or one refused connect) eject.
    public init(rise: Int, fall: Int, ejectAfter: Int, isUp: Bool = true) {
        self.rise = max(1, rise)
        self.fall = max(1, fall)
        self.ejectAfter = ejectAfter
        self.isUp = isUp
    }

    /// Starts up with the thresholds of `configuration`.
    init(_ configuration: HealthCheckConfiguration) {
        self.init(rise: configuration.rise, fall: configuration.fall, ejectAfter: configuration.ejectAfterConnectFailures)
    }

    /// Takes new thresholds (a reload) and keeps the state and the current streaks: a backend that is down stays
    /// down until `rise` successes in a row, counting those it already had.
    mutating func adopt(_ configuration: HealthCheckConfiguration) {
        rise = max(1, configuration.rise)
        fall = max(1, configuration.fall)
        ejectAfter = configuration.ejectAfterConnectFailures
    }

    /// The result of one active probe.
    public mutating func recordProbe(success: Bool) -> Flip? {
        if success {
            failures = 0
            successes += 1
            if !isUp && successes >= rise {
                isUp = true
                connectFailures = 0
                return .wentUp
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
