import Testing

@testable import ConcordLab

@Suite(.timeLimit(.minutes(3))) struct CookieJarTests {
    @Test func storesReplacesAndDeletesCookies() {
        var jar = CookieJar()
        #expect(jar.header == nil)
        jar.apply(setCookie: "concord_session=abc; Path=/; HttpOnly; SameSite=Lax")
        jar.apply(setCookie: "concord_user=user1; Path=/")
        #expect(jar.header == "concord_session=abc; concord_user=user1")
        jar.apply(setCookie: "concord_session=def; Path=/")
        #expect(jar.header == "concord_session=def; concord_user=user1")
        jar.apply(setCookie: "concord_user=; Path=/; Max-Age=0")
        #expect(jar.header == "concord_session=def")
        jar.apply(setCookie: "concord_session=; Expires=Thu, 01 Jan 1970 00:00:00 GMT")
        #expect(jar.header == nil)
    }

    @Test func ignoresGarbage() {
        var jar = CookieJar()
        jar.apply(setCookieHeaders: ["", "novalue", "=x", ";;;"])
        #expect(jar.header == nil)
    }
}
