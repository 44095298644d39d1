import Foundation

/// A secret kept in a file of its own (the embedded API key, the dashboard's
/// admin token): read when the file exists, else 32 random bytes as hex
/// written there with mode 0600. Only the path is ever announced.
public enum SecretFile {
    public enum LoadError: Error, CustomStringConvertible {
        case unreadable(String)
        case tooOpen(String, Int)
        case cannotWrite(String)
        public var description: String {
            switch self {
            case .unreadable(let p): return "cannot read \(p)"
            case .tooOpen(let p, let m):
                return "\(p) has mode \(String(m, radix: 8)); allow only its owner (chmod 600)"
            case .cannotWrite(let p): return "cannot write \(p)"
            }
        }
    }

    /// `ownerOnly`: a file readable by group or others is refused, not trusted.
    /// `what` names the secret in the announcement of a generated file.
    public static func loadOrCreate(
        path: String, what: String, ownerOnly: Bool, announce: (String) -> Void
    ) throws -> String {
        let fm = FileManager.default
        if fm.fileExists(atPath: path) {
            if ownerOnly {
                let mode = ((try? fm.attributesOfItem(atPath: path))?[.posixPermissions] as? NSNumber)?.intValue ?? 0
                if mode & 0o077 != 0 { throw LoadError.tooOpen(path, mode) }
            }
            let text = (try? String(contentsOfFile: path, encoding: .utf8))?
                .trimmingCharacters(in: .whitespacesAndNewlines)
            if let text, !text.isEmpty { return text }
            // A token file must hold one; an empty key file is written anew, as before.
            if ownerOnly { throw LoadError.unreadable(path) }
        }
        var rng = SystemRandomNumberGenerator()
        let secret = (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &rng)) }.joined()
        try? fm.createDirectory(
            atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path, withIntermediateDirectories: true)
        guard fm.createFile(atPath: path, contents: Data((secret + "\n").utf8), attributes: [.posixPermissions: 0o600])
        else { throw LoadError.cannotWrite(path) }
        announce("generated \(what); it is stored in \(path) (mode 0600)")
        return secret
    }
}
