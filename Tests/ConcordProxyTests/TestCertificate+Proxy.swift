import ConcordTLSTestSupport
import Foundation

@testable import ConcordProxy

extension TestCertificate {
    /// Writes the chain and the key to `NAMEcert.pem` and `NAMEkey.pem` in `directory` (overwriting: a renewal) and
    /// returns the proxy setting that names them.
    @discardableResult
    func install(in directory: URL, as name: String = "") throws -> ProxyTLSConfiguration {
        let (chain, key) = try write(to: directory, as: name)
        return ProxyTLSConfiguration(certificateChain: chain, privateKey: key)
    }
}
