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

    public enum LoadError: Error, CustomStringConvertible {
        case unreadable(String)
        case tooOpen(String, Int)
        case cannotWrite(String)
        public var description: String {
            switch self {
            case .unreadable(let p): return "cannot read the admin token file \(p)"
            case .tooOpen(let p, let m):
                return "the admin token file \(p) has mode \(String(m, radix: 8)); allow only its owner (chmod 600)"
            case .cannotWrite(let p): return "cannot write the admin token file \(p)"
            }
        }
    }

    /// Loads the token, generating it when the file does not exist. A file
    /// readable by group or others is refused rather than trusted.
    public static func loadOrCreate(path: String, announce: (String) -> Void) throws -> AdminToken {
        let fm = FileManager.default
        if fm.fileExists(atPath: path) {
            let mode = ((try? fm.attributesOfItem(atPath: path))?[.posixPermissions] as? NSNumber)?.intValue ?? 0
            if mode & 0o077 != 0 { throw LoadError.tooOpen(path, mode) }
            guard
                let text = try? String(contentsOfFile: path, encoding: .utf8)
                    .trimmingCharacters(in: .whitespacesAndNewlines),
                !text.isEmpty
            else { throw LoadError.unreadable(path) }
            return AdminToken(text)
        }
        var bytes = [UInt8](repeating: 0, count: 32)
        var rng = SystemRandomNumberGenerator()
        for i in bytes.indices { bytes[i] = UInt8.random(in: 0...255, using: &rng) }
        let token = bytes.map { String(format: "%02x", $0) }.joined()
        try? fm.createDirectory(
            atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path, withIntermediateDirectories: true)
        guard fm.createFile(atPath: path, contents: Data((token + "\n").utf8), attributes: [.posixPermissions: 0o600])
        else { throw LoadError.cannotWrite(path) }
        announce("generated the dashboard admin token; it is stored in \(path) (mode 0600)")
        return AdminToken(token)
    }
}
