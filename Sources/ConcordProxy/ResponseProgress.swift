import Logging

/// How far a response has got toward its client, so a timer can tell a slow exchange from a stalled one: a
/// response makes progress while its backend sends bytes (`forwarded` grows) or its client takes them (`pending`
/// shrinks, or its TCP acknowledges more: `delivered`, ``TCPBytesAcked``). Either engine keeps the counts; the rule
/// of what to do when a deadline comes is here once.
///
/// - After the response's head, the exchange's deadline is ``ProxyLimits/responseTimeout`` and is renewed while
///   it makes progress either way; a backend that stops sending mid-body, or a client that stops reading
///   (slow-read), ends the exchange after a whole period without either — nginx's `proxy_read_timeout` and
///   `send_timeout`, HAProxy's `timeout server` and `timeout client`.
/// - After the response's end, bytes may still wait for a slow client: its keep-alive period is renewed while it
///   takes them, so the keep-alive timer never cuts a response off.
struct ResponseProgress: Equatable {
    /// Bytes of responses handed to the client's connection so far (only ever grows).
    var forwarded: Int
    /// Of those, bytes its socket has not taken yet.
    var pending: Int
    /// Bytes the client's TCP has acknowledged — asked of the kernel only when a deadline is looked at and bytes are
    /// pending (a system call: not at the marks on every request's hot path); 0 otherwise or when unknown. A mark
    /// made without it reads as progress at the next look (which then marks with it): a client that stops reading
    /// is cut one period later than a backend that stops sending.
    var delivered: UInt64 = 0

    /// Whether anything moved since `mark`: the backend sent more, or the client took some.
    func advanced(since mark: ResponseProgress) -> Bool {
        forwarded != mark.forwarded || pending < mark.pending || delivered > mark.delivered
    }

    /// The client took no byte since `mark` while bytes waited for it (rather than the backend sending nothing).
    func clientStalled(since mark: ResponseProgress) -> Bool {
        pending > 0 && pending >= mark.pending && delivered <= mark.delivered
    }

    /// Logs why an exchange that made no progress since `mark` for `seconds` is ending: a client that stopped
    /// reading is the client's business (info), a backend that stopped mid-response is the operator's (warning).
    func logStall(since mark: ResponseProgress, backend: Backend?, seconds: Double, logger: Logger) {
        if clientStalled(since: mark) {
            logger.info("a client took no bytes of its response for \(seconds) s (\(pending) waiting); closing")
        } else {
            logger.warning("backend \(backend.map { "\($0)" } ?? "?") sent nothing for \(seconds) s in the middle of a response; closing the exchange")
        }
    }
}
