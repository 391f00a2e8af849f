import ConcordHashing
import ConcordSessionsTesting
import Foundation
import Testing

@testable import ConcordProxy

@Suite(.timeLimit(.minutes(3))) struct ProxyConfigurationTests {
    @Test func parsesAddresses() throws {
        #expect(try HostPort(parsing: "127.0.0.1:8080") == HostPort(host: "127.0.0.1", port: 8080))
        #expect(try HostPort(parsing: "[::1]:9000") == HostPort(host: "::1", port: 9000))
        #expect(try HostPort(parsing: "[::1]:9000").description == "[::1]:9000")
        for bad in ["8080", "host:", ":80", "::1:80", "h:99999", "[::1]80"] {
            #expect(throws: ProxyError.self) { try HostPort(parsing: bad) }
        }
        // A URL is named as one (it was told to put IPv6 addresses in brackets).
        #expect(throws: ProxyError.invalidAddress("http://127.0.0.1:80", reason: "give HOST:PORT without the http:// scheme")) {
            try HostPort(parsing: "http://127.0.0.1:80")
        }
    }

    @Test func parsesKeyChains() throws {
        let chain = try KeyChain(parsing: "cookie:sid,header:X-User,query:user,path,ip")
        #expect(chain.sources == [.cookie("sid"), .header("x-user"), .query("user"), .path, .ip])
        #expect(chain.description == "cookie:sid → header:x-user → query:user → path → ip")
        for bad in ["", "cookie:", "body:x", "cookies"] {
            #expect(throws: ProxyError.self) { try KeyChain(parsing: bad) }
        }
    }

    @Test func yamlHoldsTheSameSettingsWithDefaults() throws {
        let yaml = """
            listen: 127.0.0.1:7000
            backends: [127.0.0.1:7001, "[::1]:7002"]
            mode: http
            balance: hash
            key: cookie:sid,ip
            algorithm: maglev
            boundedLoad: 1.25
            healthPath: /ready
            limits:
              maxBodyBytes: 1024
            cpuAffinity: off
            accessLog: true
            """
        let c = try ProxyConfiguration.parse(yaml: yaml)
        #expect(c.cpuAffinity == .off)
        #expect(ProxyConfiguration().cpuAffinity == .auto)
        #expect(try ProxyConfiguration.parse(yaml: "eventLoops: 3").eventLoops == 3)
        #expect(try ProxyConfiguration.parse(yaml: "acceptProxyProtocol: true").acceptProxyProtocol)
        #expect(try ProxyConfiguration.parse(yaml: "responseHeaders: ['X-Frame-Options: DENY']").responseHeaders == ["X-Frame-Options: DENY"])
        #expect(!ProxyConfiguration().acceptProxyProtocol)
        #expect(ProxyConfiguration().eventLoops == nil, "one loop per CPU unless set")
        #expect(c.accessLog && !ProxyConfiguration().accessLog)
        #expect(ProxyReload(current: ProxyConfiguration(), new: c).applied.contains(.accessLog))
        #expect(c.listen.port == 7000)
        #expect(c.backends.count == 2 && c.backends[1].host == "::1")
        #expect(c.balance == .hash && c.algorithm == .maglev && c.boundedLoad == 1.25)
        #expect(c.key.sources == [.cookie("sid"), .ip])
        #expect(c.health.path == "/ready")
        #expect(c.limits.maxBodyBytes == 1024)
        #expect(c.limits.maxHeaderCount == ProxyLimits().maxHeaderCount)
        try c.validate()
        #expect(try ProxyConfiguration.parse(yaml: "") == ProxyConfiguration())
    }

    /// A mistyped key used to be ignored: `balanse: round-robin` left the proxy hashing, without a word.
    @Test func anUnknownKeyIsRefusedByNameWhereverItIs() throws {
        #expect(Self.refusal("balanse: round-robin").contains("balanse: unknown setting (did you mean 'balance'?)"))
        #expect(Self.refusal("healthpath: /ready").contains("healthpath: unknown setting (did you mean 'healthPath'?)"))
        #expect(Self.refusal("limits: { maxBodyByte: 1 }").contains("limits.maxBodyByte: unknown setting (did you mean 'maxBodyBytes'?)"))
        #expect(Self.refusal("health: { intervall: 2 }").contains("health.intervall: unknown setting (did you mean 'interval'?)"))
        let sni = Self.refusal("tls: { certificateChain: c, privateKey: k, sni: [{ serverName: [a], certificateChain: c, privateKey: k }] }")
        #expect(sni.contains("tls.sni[0].serverName: unknown setting (did you mean 'serverNames'?)"), "\(sni)")
        #expect(Self.refusal("httpRedirect: { listen: 127.0.0.1:80, port: 443 }").contains("httpRedirect.port: unknown setting"))
        #expect(Self.refusal("backendTLS: { cafile: x }").contains("backendTLS.cafile: unknown setting (did you mean 'caFile'?)"))
        #expect(Self.refusal("nonsense: 1").contains("nonsense: unknown setting; the settings here are listen, backends,"))
        #expect(Self.refusal("mode: udp").contains("mode: 'udp' is not one of http, tcp"))
        #expect(Self.refusal("maxQueuePerBackend: 5").contains("it belongs under limits: — limits.maxQueuePerBackend"), "\(Self.refusal("maxQueuePerBackend: 5"))")
        #expect(Self.refusal("rise: 3").contains("health.rise"))
        #expect(Self.refusal("algorithm: ringg").contains("algorithm: 'ringg' is not one of modulo, ring, jump, maglev, rendezvous"), "\(Self.refusal("algorithm: ringg"))")
        // Yams's own messages named Swift types, or said only "The given data was not valid YAML.".
        #expect(Self.refusal("eventLoops: two").contains("eventLoops: expected a whole number"))
        #expect(Self.refusal("limits: 5").contains("limits: expected settings (name: value, indented below)"))
        #expect(Self.refusal("backends: 127.0.0.1:9").contains("backends: expected a list"))
        #expect(Self.refusal("listen: [1, 2\nmode: http").contains("not valid YAML: 2:5:"))
        #expect(Self.refusal("tls: { certificateChain: c, privateKey: k, minimumVersion: '1.4' }").contains("'1.4' is not one of 1.2, 1.3"))
    }

    /// The examples in docs/proxy.md and docs/deploy.md are what people copy: every key in them is one the proxy knows.
    @Test(arguments: ["proxy.md", "deploy.md"]) func theDocumentedExampleFilesAreAccepted(_ file: String) throws {
        let blocks = try DocumentedExamples.yamlBlocks(inDoc: file)
        #expect(!blocks.isEmpty)
        for block in blocks {
            let configuration = try ProxyConfiguration.parse(yaml: block)
            #expect(configuration.tls?.sni.count == 1, "both examples show an SNI certificate: \(configuration)")
        }
    }

    private static func refusal(_ yaml: String) -> String { thrownText { try ProxyConfiguration.parse(yaml: yaml) } }

    @Test func aHealthTimingOutOfRangeIsNamedAlone() throws {
        var c = ProxyConfiguration(backends: [HostPort(host: "127.0.0.1", port: 9)])
        c.health.interval = 0
        #expect(throws: ProxyError.invalidSetting("health.interval must be more than 0 and less than 3600 seconds, got 0.0")) { try c.validate() }
    }

    @Test func aProxyProtocolHeaderTowardsBackendsNeedsTCPMode() throws {
        var http = try ProxyConfiguration.parse(yaml: "backends: [127.0.0.1:9001]\nmode: http\nproxyProtocol: v2")
        #expect(throws: ProxyError.self) { try http.validate() }
        http.mode = .tcp
        try http.validate()
    }

    @Test func badYamlAndBadSettingsAreClearErrors() throws {
        #expect(throws: ProxyError.self) { try ProxyConfiguration.parse(yaml: "mode: udp") }
        #expect(throws: ProxyError.self) { try ProxyConfiguration.parse(yaml: "listen: nowhere") }
        #expect(throws: ProxyError.self) { try ProxyConfiguration.parse(yaml: "algorithm: [1, 2") }
        #expect(throws: ProxyError.self) { try ProxyConfiguration.parse(yaml: "cpuAffinity: sometimes") }
        for count in [0, 1025] {
            var loops = ProxyConfiguration(backends: [HostPort(host: "127.0.0.1", port: 9)])
            loops.eventLoops = count
            #expect(throws: ProxyError.invalidSetting("--event-loops must be 1...1024, got \(count)")) { try loops.validate() }
        }
        var c = ProxyConfiguration(backends: [HostPort(host: "127.0.0.1", port: 1)])
        try c.validate()
        c.admin = HostPort(host: "0.0.0.0", port: 9)
        #expect(throws: ProxyError.self) { try c.validate() }
        c.admin = nil
        c.boundedLoad = 0.5
        #expect(throws: ProxyError.self) { try c.validate() }
        c.boundedLoad = nil
        c.mode = .tcp
        c.balance = .stickyCookie
        #expect(throws: ProxyError.self) { try c.validate() }
        #expect(throws: ProxyError.self) { try ProxyConfiguration().validate() }
        var queue = ProxyConfiguration(backends: [HostPort(host: "127.0.0.1", port: 9)])
        queue.limits.maxRequestsPerBackend = 0
        #expect(throws: ProxyError.invalidSetting("limits.maxRequestsPerBackend must be at least 1 (leave it out for no limit), got 0")) {
            try queue.validate()
        }
        queue.limits.maxRequestsPerBackend = 1
        queue.limits.queueTimeout = 0
        #expect(throws: ProxyError.self) { try queue.validate() }
        queue.limits.queueTimeout = 1
        queue.limits.maxQueuePerBackend = -1
        #expect(throws: ProxyError.invalidSetting("limits.maxQueuePerBackend must be at least 0 (leave it out for no bound), got -1")) {
            try queue.validate()
        }
        // In a file, settings another one makes meaningless are named (a warning at start and on reload).
        #expect(try ProxyConfiguration.parse(yaml: "balance: round-robin\nkey: cookie:sid\nalgorithm: maglev").settingsWithoutEffect
                == ["key cookie:sid (balance round-robin does not hash)", "algorithm maglev (balance round-robin does not hash)"])
        #expect(try ProxyConfiguration.parse(yaml: "mode: tcp\nkey: cookie:sid").settingsWithoutEffect == ["key cookie:sid (mode tcp hashes the client address only)"])
        #expect(try ProxyConfiguration.parse(yaml: "key: cookie:sid\nalgorithm: maglev").settingsWithoutEffect.isEmpty)
        #expect(try ProxyConfiguration.parse(yaml: "tcpEngine: nio").settingsWithoutEffect == ["tcpEngine nio (mode http: httpEngine says what serves it)"])
        #expect(try ProxyConfiguration.parse(yaml: "mode: tcp\nhttpEngine: nio").settingsWithoutEffect == ["httpEngine nio (mode tcp: tcpEngine says what serves it)"])
        #expect(try ProxyConfiguration.parse(yaml: "httpEngine: nio").httpEngine == .nio)
        #expect(try ProxyConfiguration.parse(yaml: "key: cookie:sid").httpEngine == .direct)
        #expect(throws: (any Error).self) { try ProxyConfiguration.parse(yaml: "httpEngine: epoll") }
        #expect(try ProxyConfiguration.parse(yaml: "mode: tcp\ntcpEngine: nio").tcpEngine == .nio)
        #expect(throws: (any Error).self) { try ProxyConfiguration.parse(yaml: "mode: tcp\ntcpEngine: epoll") }
        // Settings another one makes meaningless are refused, not ignored.
        queue.limits.maxQueuePerBackend = 5
        try queue.validate()
        queue.limits.maxRequestsPerBackend = nil
        #expect(throws: ProxyError.self) { try queue.validate() }
        var bounded = ProxyConfiguration(backends: [HostPort(host: "127.0.0.1", port: 9)], boundedLoad: 1.25)
        try bounded.validate()
        bounded.balance = .roundRobin
        #expect(throws: ProxyError.invalidSetting("boundedLoad (--bounded-load) caps the hash's picks; balance round-robin would ignore it: leave it out")) {
            try bounded.validate()
        }
    }

    @Test func responseHeadersMustBeFieldsTheProxyMayAdd() throws {
        var c = ProxyConfiguration(backends: [HostPort(host: "127.0.0.1", port: 9001)])
        c.responseHeaders = ["Strict-Transport-Security:  max-age=31536000; includeSubDomains", "X-Frame-Options:DENY"]
        try c.validate()
        #expect(try c.responseFields.map { "\($0.name)=\($0.value)" } == [
            "Strict-Transport-Security=max-age=31536000; includeSubDomains", "X-Frame-Options=DENY",
        ])
        for bad in ["no colon", ": empty name", "Bad Name: x", "X-Empty:", "X-Control: a\u{7}b", "Content-Length: 5",
                    "connection: close", "Set-Cookie: a=b", "Transfer-Encoding: chunked"] {
            c.responseHeaders = [bad]
            #expect(throws: ProxyError.self, "\(bad)") { try c.validate() }
        }
        c.responseHeaders = ["X-Frame-Options: DENY"]
        c.mode = .tcp
        #expect(throws: ProxyError.self) { try c.validate() }
    }

    @Test func theBackendQueueIsOffUnlessSet() throws {
        #expect(ProxyLimits().maxRequestsPerBackend == nil)
        #expect(ProxyLimits().queueTimeout == 5)
        #expect(ProxyLimits().maxQueuePerBackend == nil && !ProxyLimits().abortQueuedOnClose)
        #expect(try ProxyConfiguration.parse(yaml: "limits: { abortQueuedOnClose: true }").limits.abortQueuedOnClose)
        let c = try ProxyConfiguration.parse(yaml: "limits: { maxRequestsPerBackend: 8, queueTimeout: 2.5, maxQueuePerBackend: 100 }")
        #expect(c.limits.maxRequestsPerBackend == 8 && c.limits.queueTimeout == 2.5 && c.limits.maxQueuePerBackend == 100)
    }

    @Test func summaryNamesTheStrategy() {
        let c = ProxyConfiguration(backends: [HostPort(host: "127.0.0.1", port: 1)], key: KeyChain([.cookie("sid"), .ip]))
        #expect(c.summary == "mode http, balance hash cookie:sid → ip, algorithm ring, 1 backend")
        var queued = c
        queued.limits.maxRequestsPerBackend = 16
        #expect(queued.summary == "mode http, balance hash cookie:sid → ip, algorithm ring, 1 backend, at most 16 requests per backend, queue timeout 5.0 s")
    }
}

@Suite(.timeLimit(.minutes(3))) struct RequestKeyExtractorTests {
    func head(_ uri: String = "/", _ headers: [(String, String)] = []) -> ClientRequestHead {
        ClientRequestHead.parsing(target: uri, headers: headers)
    }

    let peer = ClientAddress(parsing: "10.1.2.3")!

    /// IPv6 text as RFC 5952 writes it (what X-Forwarded-For, Forwarded and the access log carry).
    @Test(arguments: [
        ("2001:0db8:0000:0000:0000:0000:0000:0007", "2001:db8::7"), ("::1", "::1"), ("::", "::"),
        ("2001:db8:0:1:0:0:0:1", "2001:db8:0:1::1"),  // the longest run of zeros
        ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),  // of equal runs, the first
        ("2001:db8:0:1:2:3:4:5", "2001:db8:0:1:2:3:4:5"),  // a single zero group stays
        ("fe80::", "fe80::"), ("::ffff:10.1.2.3", "10.1.2.3"),  // IPv4-mapped is IPv4
    ])
    func ipv6IsWrittenInItsCanonicalForm(input: String, expected: String) throws {
        #expect(try #require(ClientAddress(parsing: input)).description == expected)
    }

    @Test func firstPresentSourceWins() throws {
        let extractor = RequestKeyExtractor(chain: try KeyChain(parsing: "cookie:sid,query:user,ip"))
        let withCookie = head("/?user=bob", [("cookie", "a=1; sid=abc; b=2")])
        #expect(extractor.keyHash(for: withCookie, peer: peer) == KeyHash.hash("abc"))
        #expect(extractor.keyHash(for: head("/x?y=1&user=bob"), peer: peer) == KeyHash.hash("bob"))
        #expect(extractor.keyHash(for: head("/"), peer: peer) == extractor.ipHash(peer))
        #expect(extractor.keyHash(for: head("/"), peer: nil) == nil)
        // An empty cookie value is absent.
        #expect(extractor.keyHash(for: head("/", [("cookie", "sid=")]), peer: peer) == extractor.ipHash(peer))
    }

    @Test func cookieScanFindsExactNamesInEveryCookieHeader() {
        func cookie(_ name: String, _ values: [String]) -> String? {
            let request = head("/", values.map { ("Cookie", $0) })
            return request.cookie(named: name).map { request.text($0) }
        }
        #expect(cookie("sid", ["sid=abc"]) == "abc")
        #expect(cookie("sid", ["xsid=1; sid=abc"]) == "abc")          // a longer name that ends in "sid" is not it
        #expect(cookie("sid", ["sidx=1;sid=abc;b=2"]) == "abc")        // no space after ';'
        #expect(cookie("sid", ["a=1;   sid=a=b"]) == "a=b")            // '=' inside a value stays
        #expect(cookie("sid", ["a=1", "b=2; sid=second-header"]) == "second-header")
        #expect(cookie("sid", ["sid=; sid=later"]) == "later")          // an empty value is absent
        #expect(cookie("sid", ["a=1;", ";", "", "sid"]) == nil)
        #expect(cookie("SID", ["sid=abc"]) == nil)                      // cookie names are case-sensitive
        #expect(cookie("sid", ["sid=ünï; b=2"]) == "ünï")
        #expect(cookie("sid", ["a=1; sid=\"abc\"; b=2"]) == "abc")      // RFC 6265 quotes are not part of the value
        #expect(cookie("sid", ["sid=\"\""]) == "\"\"")                  // (two quotes alone are left as they are)
        #expect(head("/", [("x-cookie", "sid=no")]).cookie(named: "sid") == nil)
        // The only Cookie field among others (found where the parse noted it).
        let among = head("/", [("X-A", "sid=no"), ("Cookie", "a=1; sid=mid"), ("X-B", "2")])
        #expect(among.cookieFieldCount == 1 && among.cookie(named: "sid").map { among.text($0) } == "mid")
        #expect(head("/", [("COOKIE", "sid=any-case-field-name")]).cookie(named: "sid").map { _ in true } == true)
    }

    @Test func headerAndPathSources() throws {
        let header = RequestKeyExtractor(chain: try KeyChain(parsing: "header:X-User"))
        #expect(header.keyHash(for: head("/", [("x-user", "u1")]), peer: nil) == KeyHash.hash("u1"))
        // The first field of that name counts, whatever its case; an empty one is absent.
        #expect(header.keyHash(for: head("/", [("X-USER", " u2 "), ("x-user", "u3")]), peer: nil) == KeyHash.hash("u2"))
        #expect(header.keyHash(for: head("/", [("x-user", "")]), peer: nil) == nil)
        let path = RequestKeyExtractor(chain: KeyChain([.path]))
        #expect(path.keyHash(for: head("/a/b?c=d"), peer: nil) == KeyHash.hash("/a/b"))
        let query = RequestKeyExtractor(chain: try KeyChain(parsing: "query:u"))
        #expect(query.keyHash(for: head("/?u=&uu=2&u=3"), peer: nil) == KeyHash.hash("3"))
        #expect(query.keyHash(for: head("/?x=1&u"), peer: nil) == nil)
    }

    @Test func forwardedForIsBelievedOnlyFromTrustedPeers() throws {
        let extractor = RequestKeyExtractor(chain: KeyChain([.ip]), trustedProxies: [try AddressPrefix(parsing: "10.0.0.0/8")])
        let request = head("/", [("x-forwarded-for", "203.0.113.9, 10.9.9.9")])
        #expect(extractor.clientAddress(for: request, peer: peer) == ClientAddress(parsing: "203.0.113.9"))
        let stranger = ClientAddress(parsing: "192.0.2.1")!
        #expect(extractor.clientAddress(for: request, peer: stranger) == stranger)
        // Garbage in the header stops the walk at the last good hop.
        let garbage = head("/", [("x-forwarded-for", "not-an-ip, 10.9.9.9")])
        #expect(extractor.clientAddress(for: garbage, peer: peer) == ClientAddress(parsing: "10.9.9.9"))
    }

    @Test func prefixGroupingLikeNginxIPHash() {
        let grouped = RequestKeyExtractor(chain: KeyChain([.ip]), ipv4PrefixLength: 24)
        #expect(grouped.ipHash(ClientAddress(parsing: "10.1.2.3")!) == grouped.ipHash(ClientAddress(parsing: "10.1.2.200")!))
        #expect(grouped.ipHash(ClientAddress(parsing: "10.1.2.3")!) != grouped.ipHash(ClientAddress(parsing: "10.1.3.3")!))
        let exact = RequestKeyExtractor(chain: KeyChain([.ip]))
        #expect(exact.ipHash(ClientAddress(parsing: "10.1.2.3")!) != exact.ipHash(ClientAddress(parsing: "10.1.2.4")!))
        // IPv4-mapped IPv6 hashes like IPv4; IPv6 parses.
        #expect(ClientAddress(parsing: "::ffff:10.1.2.3") == ClientAddress(parsing: "10.1.2.3"))
        #expect(ClientAddress(parsing: "[2001:db8::1]")!.bytes.count == 16)
        #expect(ClientAddress(parsing: "1.2.3.4:5678") == ClientAddress(parsing: "1.2.3.4"))
    }
}
