import Foundation
import Testing

@testable import ConcordReplication

@Suite struct ReplicationHelloProofTests {
    static let secret = Array("a secret of sixteen or more bytes".utf8)
    static let now = Date(timeIntervalSince1970: 1_764_700_000)

    @Test func aProvenHelloIsAdmittedOnlyWithTheRightSecretAndTime() throws {
        let hello = ReplicationHelloProof.hello(nodeID: "n2", secret: Self.secret, now: Self.now)
        #expect(try ReplicationHelloProof.admit(hello, secret: Self.secret, now: Self.now) == "n2")
        #expect(try ReplicationHelloProof.admit(hello, secret: Self.secret, now: Self.now.addingTimeInterval(299)) == "n2")
        #expect(throws: ReplicationProtocolError.self, "too old") {
            try ReplicationHelloProof.admit(hello, secret: Self.secret, now: Self.now.addingTimeInterval(301))
        }
        #expect(throws: ReplicationProtocolError.self, "another secret") {
            try ReplicationHelloProof.admit(hello, secret: Array("another secret of sixteen bytes".utf8), now: Self.now)
        }
        // The proof covers the node id and the time: neither can be changed.
        guard case .provenHello(_, let issuedAt, let proof) = hello else { Issue.record("not proven: \(hello)"); return }
        for forged in [ReplicationMessage.provenHello(nodeID: "n3", issuedAtMilliseconds: issuedAt, proof: proof),
                       .provenHello(nodeID: "n2", issuedAtMilliseconds: issuedAt + 1, proof: proof),
                       .provenHello(nodeID: "n2", issuedAtMilliseconds: issuedAt, proof: Array(proof.dropLast()))] {
            #expect(throws: ReplicationProtocolError.self, "\(forged)") { try ReplicationHelloProof.admit(forged, secret: Self.secret, now: Self.now) }
        }
    }

    @Test func aPlainHelloIsAdmittedOnlyWithoutASecret() throws {
        #expect(ReplicationHelloProof.hello(nodeID: "n1", secret: nil) == .hello(nodeID: "n1"))
        #expect(try ReplicationHelloProof.admit(.hello(nodeID: "n1"), secret: nil) == "n1")
        #expect(throws: ReplicationProtocolError.self) { try ReplicationHelloProof.admit(.hello(nodeID: "n1"), secret: Self.secret) }
        #expect(throws: ReplicationProtocolError.self) { try ReplicationHelloProof.admit(.stateRequest(requestID: 1), secret: nil) }
    }

    @Test func anEncodedConfigurationCarriesNoSecret() throws {
        let configuration = ReplicationConfiguration(nodeID: "n1", port: 7001, sharedSecret: Self.secret)
        let json = try JSONEncoder().encode(configuration)
        let text = String(decoding: json, as: UTF8.self)
        #expect(text.contains("n1"))
        #expect(!text.contains("sharedSecret"))
        // The secret's bytes as numbers, as a [UInt8] would be encoded.
        #expect(!text.contains(Self.secret.prefix(4).map(String.init).joined(separator: ",")))
        let decoded = try JSONDecoder().decode(ReplicationConfiguration.self, from: json)
        #expect(decoded.nodeID == "n1" && decoded.port == 7001 && decoded.sharedSecret == nil)
    }
}
