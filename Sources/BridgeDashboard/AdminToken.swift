import BridgeConfig
import Crypto
import Foundation

/// The dashboard's admin token: read from `[bridge] admin_token_file`, or
/// generated there on first use (mode 0600, like the embedded API key). Only
/// its path is ever printed; requests carry it in `X-Taskbridge-Admin-Token`.
public struct AdminToken: Sendable {
    public static let header = "X-Taskbridge-Admin-Token"
    let digest: [UInt8]

    public init(_ token: String) { digest = Array(SHA256.hash(data: Data(token.utf8))) }

    /// Compares digests in constant time, so response timing tells nothing
    /// about how much of a guess was right.
    public func accepts(_ candidate: String?) -> Bool {
        guard let candidate, !candidate.isEmpty else { return false }
        let other = Array(SHA256.hash(data: Data(candidate.utf8)))
        return zip(digest, other).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
    }

    /// Loads the token, generating it when the file does not exist. A file
    /// readable by group or others is refused rather than trusted.
    public static func loadOrCreate(path: String, announce: (String) -> Void) throws -> AdminToken {
        AdminToken(
            try SecretFile.loadOrCreate(
                path: path, what: "the dashboard admin token", ownerOnly: true, announce: announce))
    }
}
