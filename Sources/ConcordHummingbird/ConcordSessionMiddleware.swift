import ConcordSessions
import Hummingbird
import Logging
import Metrics

/// Gives every handler `context.session`, for every strategy: reads the session cookie before the handler,
/// writes the changes and sets the cookie after it.
///
/// ```swift
/// let router = Router(context: ConcordRequestContext<ShopSession>.self)
/// router.add(middleware: try ConcordSessionMiddleware(configuration: .init(strategy: .client(keyRing))))
/// router.post("/cart/:item") { _, context in
///     let item = try context.parameters.require("item")
///     context.session.update { $0.cart.append(item) }
///     return HTTPResponse.Status.noContent
/// }
/// ```
/// Outcomes at the edge: a store that cannot be reached → 503 and one error log line; a session too large for
/// its cookie → 500 naming the size; changes that kept conflicting → 409. A refused cookie (tampered, expired,
/// unknown) is not an error: the request simply has no session, and the refusal is counted in
/// `concord_session_cookie_rejected_total{reason}`. A handler that throws commits nothing. A touch the store cannot
/// take (a request that only read its session, once `touchInterval` had passed) is skipped, not a 503: the response
/// goes out, a warning says so and `concord_session_touch_skipped_total` counts it.
public struct ConcordSessionMiddleware<Context: ConcordSessionRequestContext>: RouterMiddleware {
    public let manager: SessionManager<Context.Session>
    private let cookie: SessionCookieConfiguration
    private let rejectionCounters: [SessionRejection: Counter]
    private let unavailableCounter: Counter
    private let touchSkippedCounter: Counter

    /// - Throws: ``SessionError`` `.invalidConfiguration` for inconsistent settings.
    public init(configuration: ConcordSessionConfiguration, context: Context.Type = Context.self) throws {
        try self.init(manager: SessionManager(configuration: configuration))
    }

    /// A middleware over an existing manager (tests inject one with a manual wall clock).
    /// - Parameter metricsFactory: where the counters go; the process-wide `MetricsSystem` by default.
    public init(manager: SessionManager<Context.Session>, metricsFactory: any MetricsFactory = MetricsSystem.factory) {
        self.manager = manager
        self.cookie = manager.configuration.cookie
        let strategy = manager.configuration.strategy.name
        self.rejectionCounters = Dictionary(uniqueKeysWithValues: SessionRejection.allCases.map {
            ($0, Counter(
                label: "concord_session_cookie_rejected_total", dimensions: [("reason", $0.rawValue), ("strategy", strategy)],
                factory: metricsFactory))
        })
        self.unavailableCounter = Counter(
            label: "concord_session_store_unavailable_total", dimensions: [("strategy", strategy)], factory: metricsFactory)
        self.touchSkippedCounter = Counter(
            label: "concord_session_touch_skipped_total", dimensions: [("strategy", strategy)], factory: metricsFactory)
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var cookieValue: Substring?
        // A loop over the fields, not `headers[values: .cookie]`, which builds an array on every request.
        for field in request.headers where field.name == .cookie {
            cookieValue = cookie.value(inCookieHeader: field.value)
            if cookieValue != nil { break }
        }
        var outcome: SessionLoadOutcome
        do {
            outcome = try await manager.load(cookieValue: cookieValue, into: context.session)
            if case .rejected(let reason) = outcome {
                count(reason, logger: context.logger)
                // Several cookies of this name (a stale one of another Path or Domain sent first): try the others.
                for field in request.headers where field.name == .cookie {
                    for other in cookie.values(inCookieHeader: field.value) where other != cookieValue {
                        outcome = try await manager.load(cookieValue: other, into: context.session)
                        guard case .rejected(let reason) = outcome else { break }
                        count(reason, logger: context.logger)
                    }
                    if outcome == .loaded { break }
                }
            }
        } catch {
            throw mapped(error, phase: "load", logger: context.logger)
        }
        var response = try await next(request, context)
        let update: SessionCookieUpdate
        do {
            // Most requests only read their session: skip the asynchronous commit call for them.
            if manager.needsCommit(context.session) {
                let skippedTouch: SessionStoreError?
                (update, skippedTouch) = try await manager.commitReportingSkippedTouch(context.session)
                if let skippedTouch {
                    touchSkippedCounter.increment()
                    context.logger.warning(
                        "session store unavailable for a touch; skipped, the response goes out",
                        metadata: ["error": "\(skippedTouch)"])
                }
            } else {
                update = .unchanged
            }
        } catch {
            throw mapped(error, phase: "save", logger: context.logger)
        }
        if let header = cookie.setCookieHeader(for: update) {
            response.headers[values: .setCookie].append(header)
            // A response that sets a session cookie must never be stored by a shared cache.
            if response.headers[.cacheControl] == nil { response.headers[.cacheControl] = "no-store" }
        }
        return response
    }

    private func count(_ rejection: SessionRejection, logger: Logger) {
        rejectionCounters[rejection]?.increment()
        logger.debug("session cookie refused", metadata: ["concord.session.rejection": "\(rejection.rawValue)"])
    }

    /// The HTTP error for a session failure, logging it once.
    private func mapped(_ error: any Error, phase: String, logger: Logger) -> any Error {
        if let error = error as? SessionStoreError, error.isUnavailable {
            unavailableCounter.increment()
            logger.error("session store unavailable; answering 503", metadata: ["concord.session.phase": "\(phase)", "error": "\(error)"])
            return HTTPError(.serviceUnavailable, message: "Session store unavailable, please retry.")
        }
        if let error = error as? SessionError {
            logger.error("session \(phase) failed", metadata: ["error": "\(error)"])
            if error.isTooManyConflicts {
                return HTTPError(.conflict, message: "The session was changed concurrently, please retry.")
            }
            return HTTPError(.internalServerError, message: error.description)
        }
        if let error = error as? SessionStoreError {
            // The store's own words (a file name, a database error) stay in the log: clients get a plain 500.
            logger.error("session \(phase) failed", metadata: ["error": "\(error)"])
            return HTTPError(.internalServerError, message: "The session could not be read or saved.")
        }
        return error
    }
}
