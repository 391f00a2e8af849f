import Foundation
import Logging

/// When a served certificate stops being valid, so that an expired or soon-expiring one is said at start and on
/// every reload (a renewal that did not happen is the usual TLS outage) and exported for alerting.
struct CertificateExpiry: Sendable, Hashable {
    /// The PEM file it was read from.
    var file: String
    /// Its `notAfter`, in seconds since 1970.
    var notValidAfter: Int

    /// Certificates that expire within this are warned about.
    static let warningWindow = 14 * 24 * 3600

    /// The log line for this certificate at `now`: an error once it has expired, a warning within
    /// ``warningWindow``, nothing otherwise.
    func problem(now: Int) -> (level: Logger.Level, message: String)? {
        let date = ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: TimeInterval(notValidAfter)))
        if notValidAfter <= now {
            return (.error, "TLS certificate \(file) expired on \(date); clients will refuse it — renew it and send SIGHUP")
        }
        if notValidAfter - now <= Self.warningWindow {
            let days = (notValidAfter - now) / 86_400
            return (.warning, "TLS certificate \(file) expires on \(date), in \(days) day\(days == 1 ? "" : "s"); renew it and send SIGHUP")
        }
        return nil
    }
}
