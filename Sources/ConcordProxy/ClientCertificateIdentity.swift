import Crypto
import NIOSSL
import X509

/// Who a mutual-TLS client is, as its backend learns it: one element of an `X-Forwarded-Client-Cert` field in
/// Envoy's format (`Hash=…;Subject="…";URI=…;DNS=…`), so an app behind the proxy can authorise by the
/// certificate the proxy checked without terminating TLS itself.
/// - `Hash`: SHA-256 of the certificate's DER bytes, lowercase hex (a stable id to pin a client to);
/// - `Subject`: the subject's distinguished name (RFC 4514 string, quoted);
/// - `URI` and `DNS`: each subject alternative name of those kinds (a SPIFFE id is a URI).
struct ClientCertificateIdentity: Sendable, Equatable {
    let hash: String
    let subject: String
    let uris: [String]
    let dnsNames: [String]

    init(certificate: NIOSSLCertificate) throws {
        let der = try certificate.toDERBytes()
        let digits = Array("0123456789abcdef".utf8)
        hash = String(decoding: SHA256.hash(data: der).flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 0x0F)]] }, as: UTF8.self)
        let parsed = try Certificate(derEncoded: der)
        subject = parsed.subject.description
        var uris: [String] = []
        var dnsNames: [String] = []
        for name in try parsed.extensions.subjectAlternativeNames ?? SubjectAlternativeNames() {
            switch name {
            case .uniformResourceIdentifier(let uri): uris.append(uri)
            case .dnsName(let dns): dnsNames.append(dns)
            default: break
            }
        }
        self.uris = uris
        self.dnsNames = dnsNames
    }

    /// The field value (one element). Values with a separator (`;` `,` `=`), a quote or a space are quoted, with
    /// `"` and `\` escaped; control characters (which a field value may not hold) are dropped.
    var fieldValue: String {
        var parts = ["Hash=\(hash)", "Subject=\(Self.quoted(subject))"]
        parts += uris.map { "URI=\(Self.quotedIfNeeded($0))" }
        parts += dnsNames.map { "DNS=\(Self.quotedIfNeeded($0))" }
        return parts.joined(separator: ";")
    }

    private static func quotedIfNeeded(_ value: String) -> String {
        value.unicodeScalars.contains { ";,=\" \\".unicodeScalars.contains($0) || $0.value < 0x20 || $0.value == 0x7F }
            ? quoted(value) : value
    }

    private static func quoted(_ value: String) -> String {
        var out = "\""
        for scalar in value.unicodeScalars where scalar.value >= 0x20 && scalar.value != 0x7F {
            if scalar == "\"" || scalar == "\\" { out.append("\\") }
            out.unicodeScalars.append(scalar)
        }
        return out + "\""
    }
}
