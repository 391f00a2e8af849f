/// Where sessions live, chosen in configuration; app code is the same for every strategy.
///
/// - ``store(_:)``: server-side, in any ``SessionStore`` (memory, Redis, PostgreSQL, SQLite, a replicated
///   peer set, a near cache); the cookie carries only the id. Concurrent changes compose through versions.
/// - ``client(_:sealer:)``: the whole session sealed (AEAD) into the cookie; no server keeps anything.
///   Concurrent requests of one user each send back their own cookie, so the last response wins.
/// - ``local(_:)``: a ``MemorySessionStore`` in this process (one server only; the baseline).
public struct SessionStrategy: Sendable {
    enum Kind: Sendable {
        case store(any SessionStore)
        case client(SessionSealer)
    }

    let kind: Kind
    /// A short name for logs and metrics (`store`, `client`).
    public let name: String

    private init(_ kind: Kind, name: String) {
        self.kind = kind
        self.name = name
    }

    /// Sessions kept server-side in `store`.
    public static func store(_ store: any SessionStore) -> Self { Self(.store(store), name: "store") }

    /// Sessions sealed into the cookie with `keyRing`.
    public static func client(_ keyRing: SessionKeyRing, sealer configuration: SessionSealerConfiguration = .init()) -> Self {
        Self(.client(SessionSealer(keyRing: keyRing, configuration: configuration)), name: "client")
    }

    /// Sessions kept in a new in-process ``MemorySessionStore``.
    public static func local(_ configuration: MemorySessionStoreConfiguration = .init()) -> Self {
        Self(.store(MemorySessionStore(configuration: configuration)), name: "local")
    }

    /// The server-side store, if this strategy has one.
    public var store: (any SessionStore)? {
        if case .store(let store) = kind { store } else { nil }
    }
}
