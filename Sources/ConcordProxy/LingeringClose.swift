/// How an L4 pair ends when its backend is done but its client may still be sending (a backend's early answer to
/// an upload, then its close or reset): the answer's end is written and the client's output shut, then the
/// client's bytes are read and dropped until its EOF, until it has sent nothing for `limits.lingeringTimeout`, or
/// for ``maximumSeconds`` in all. Closing a socket with bytes unread makes the kernel send a reset and drop what it
/// still holds of the answer — most of a 2-MB answer to a slow reader on loopback (a test), more on a slow link.
/// nginx does the same for HTTP (`lingering_close`, `lingering_timeout`, `lingering_time`).
enum LingeringClose {
    /// How long a lingering client connection is kept at most, whatever it sends (nginx's `lingering_time`).
    static let maximumSeconds: Int64 = 30
}
