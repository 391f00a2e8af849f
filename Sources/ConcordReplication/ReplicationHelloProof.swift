import Crypto
import Foundation

/// How a caller proves, in its hello, that it knows the cluster's shared secret
/// (``ReplicationConfiguration/sharedSecret``): `HMAC-SHA256(secret, "concord-replication-hello" ‖ node id ‖ time)`,
/// with the time in milliseconds since 1970, accepted within ``allowedSkew`` of the receiver's clock.
///
/// It keeps out whoever can reach the port but does not know the secret — before it, anyone could connect, say
/// hello and ask for every session. It does not hide the traffic (a network that can be read needs TLS or a
/// private link), and a hello seen on the wire can be replayed within the skew window, which gives the replayer
/// nothing a reader of that wire did not already have.
enum ReplicationHelloProof {
    /// Clocks of a cluster's machines are NTP-synchronised to well under this.
    static let allowedSkew: UInt64 = 5 * 60 * 1000

    /// This node's hello: proven when the cluster has a secret.
    static func hello(nodeID: String, secret: [UInt8]?, now: Date = Date()) -> ReplicationMessage {
        guard let secret else { return .hello(nodeID: nodeID) }
        let issuedAt = UInt64(max(0, now.timeIntervalSince1970 * 1000))
        return .provenHello(nodeID: nodeID, issuedAtMilliseconds: issuedAt, proof: proof(secret: secret, nodeID: nodeID, issuedAt: issuedAt))
    }

    /// The caller's node id if `first` is a hello this node accepts: any hello without a secret, only a proven one
    /// with it (the proof right, its time within ``allowedSkew``).
    static func admit(_ first: ReplicationMessage, secret: [UInt8]?, now: Date = Date()) throws(ReplicationProtocolError) -> String {
        switch first {
        case .hello(let nodeID):
            guard secret == nil else {
                throw .unexpectedMessage("hello from \(nodeID) without proof of the shared secret (--replication-secret on every node)")
            }
            return nodeID
        case .provenHello(let nodeID, let issuedAt, let proof):
            guard let secret else { return nodeID }  // the caller has a secret this node lacks: nothing to check against
            let nowMilliseconds = UInt64(max(0, now.timeIntervalSince1970 * 1000))
            let skew = issuedAt > nowMilliseconds ? issuedAt - nowMilliseconds : nowMilliseconds - issuedAt
            guard skew <= allowedSkew else {
                throw .unexpectedMessage("hello from \(nodeID) dated \(skew / 1000) s away from this node's clock (at most \(allowedSkew / 1000) s)")
            }
            let message = Self.message(nodeID: nodeID, issuedAt: issuedAt)
            guard HMAC<SHA256>.isValidAuthenticationCode(proof, authenticating: message, using: SymmetricKey(data: secret)) else {
                throw .unexpectedMessage("hello from \(nodeID) with a wrong proof: its --replication-secret differs from this node's")
            }
            return nodeID
        default:
            throw .unexpectedMessage("the first message must be hello")
        }
    }

    static func proof(secret: [UInt8], nodeID: String, issuedAt: UInt64) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: message(nodeID: nodeID, issuedAt: issuedAt), using: SymmetricKey(data: secret)))
    }

    private static func message(nodeID: String, issuedAt: UInt64) -> [UInt8] {
        var bytes = Array("concord-replication-hello".utf8)
        bytes.append(0)
        bytes += Array(nodeID.utf8)
        bytes.append(0)
        withUnsafeBytes(of: issuedAt.bigEndian) { bytes += $0 }
        return bytes
    }
}
