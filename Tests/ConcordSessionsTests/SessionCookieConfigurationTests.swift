import ConcordSessions
import Testing

@Suite(.timeLimit(.minutes(3))) struct SessionCookieConfigurationTests {
    @Test func defaultsAreHttpOnlyLaxAndPersistent() throws {
        let cookie = SessionCookieConfiguration()
        try cookie.validate()
        #expect(cookie.setCookieHeader(for: .set(value: "abc", maxAge: 60))
                == "concord_session=abc; Max-Age=60; Path=/; HttpOnly; SameSite=Lax")
        #expect(cookie.setCookieHeader(for: .unchanged) == nil)
    }

    @Test func everyAttributeIsRendered() throws {
        let cookie = SessionCookieConfiguration(
            name: "sid", httpOnly: false, sameSite: .strict, secure: true, path: "/app", domain: "example.com", persistent: false)
        try cookie.validate()
        #expect(cookie.setCookieHeader(for: .set(value: "v", maxAge: 60)) == "sid=v; Path=/app; Domain=example.com; Secure; SameSite=Strict")
        #expect(cookie.setCookieHeader(for: .expire)
                == "sid=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/app; Domain=example.com; Secure; SameSite=Strict")
    }

    @Test func hostPrefixNeedsSecureRootPathAndNoDomain() throws {
        let good = SessionCookieConfiguration(hostPrefix: true, secure: true)
        try good.validate()
        #expect(good.fullName == "__Host-concord_session")
        for bad in [
            SessionCookieConfiguration(hostPrefix: true),
            SessionCookieConfiguration(hostPrefix: true, secure: true, path: "/app"),
            SessionCookieConfiguration(hostPrefix: true, secure: true, domain: "example.com"),
        ] {
            let error = #expect(throws: SessionError.self) { try bad.validate() }
            #expect(error?.isInvalidConfiguration == true)
        }
    }

    @Test func invalidNamesAndSameSiteNoneWithoutSecureAreRefused() {
        #expect(throws: SessionError.self) { try SessionCookieConfiguration(name: "a b").validate() }
        #expect(throws: SessionError.self) { try SessionCookieConfiguration(name: "").validate() }
        #expect(throws: SessionError.self) { try SessionCookieConfiguration(sameSite: SessionCookieConfiguration.SameSite.none).validate() }
        #expect(throws: SessionError.self) { try SessionCookieConfiguration(path: "/; Domain=evil").validate() }
    }

    @Test func findsItsValueAmongOtherCookies() {
        let cookie = SessionCookieConfiguration(hostPrefix: true, secure: true)
        #expect(cookie.value(inCookieHeaders: ["a=1; __Host-concord_session=xyz; b=2"]) == "xyz")
        #expect(cookie.value(inCookieHeaders: ["a=1", "__Host-concord_session=q"]) == "q")
        #expect(cookie.value(inCookieHeaders: ["concord_session=plain"]) == nil)
        #expect(cookie.value(inCookieHeaders: [String]()) == nil)
        // Any sequence of string-likes reads the same as the `[String]` fast path.
        let substrings: [Substring] = ["a=1", "__Host-concord_session=q"]
        #expect(cookie.value(inCookieHeaders: substrings) == "q")
        let plain = SessionCookieConfiguration()
        #expect(plain.value(inCookieHeaders: [" \tconcord_session=v1;x=2"]) == "v1")
        #expect(plain.value(inCookieHeaders: ["concord_session_other=no; concord_session=yes"]) == "yes")
        #expect(plain.value(inCookieHeaders: ["xconcord_session=no"]) == nil)
        #expect(plain.value(inCookieHeaders: ["concord_session"]) == nil)
        #expect(plain.value(inCookieHeaders: ["concord_session="]) == "")
        #expect(plain.value(inCookieHeaders: ["concord_session=a=b; c=d"]) == "a=b")
        #expect(plain.value(inCookieHeaders: [";;; concord_session=é€;"]) == "é€")
        // RFC 6265: a value may come in double quotes, which are not part of it.
        #expect(plain.value(inCookieHeaders: ["a=1; concord_session=\"q1\"; b=2"]) == "q1")
        #expect(plain.values(inCookieHeader: "concord_session=\"q1\"; concord_session=q2") == ["q1", "q2"])
        #expect(plain.value(inCookieHeaders: ["concord_session=\""]) == "\"", "a lone quote is a value")
    }

    /// A short idle timeout needs no touch interval of its own (the fixed 60-s default made any idle timeout of a
    /// minute or less fail validation); one given explicitly is still checked.
    @Test func theTouchIntervalFollowsAShortIdleTimeout() throws {
        let short = ConcordSessionConfiguration(strategy: .local(), idleTimeout: .seconds(30))
        try short.validate()
        #expect(short.touchInterval == .seconds(15))
        #expect(ConcordSessionConfiguration(strategy: .local()).touchInterval == .seconds(60))
        #expect(ConcordSessionConfiguration(strategy: .local(), idleTimeout: .seconds(90)).touchInterval == .seconds(45))
        #expect(throws: SessionError.self) {
            try ConcordSessionConfiguration(strategy: .local(), idleTimeout: .seconds(30), touchInterval: .seconds(60)).validate()
        }
    }
}
