import Crypto

/// SHA-256 from swift-crypto (BoringSSL's, already compiled into the graph by
/// swift-certificates): the streaming hasher of export and the dedupe key.
/// The hand-written one it replaces fed the state one byte at a time.
public struct SHA256Digest: Sendable {
    private var hasher = Crypto.SHA256()

    public init() {}

    public static func hash<Bytes: Sequence>(_ data: Bytes) -> [UInt8] where Bytes.Element == UInt8 {
        Array(Crypto.SHA256.hash(data: Array(data)))
    }

    public static func hex<Bytes: Sequence>(_ data: Bytes) -> String where Bytes.Element == UInt8 {
        hexString(Crypto.SHA256.hash(data: Array(data)))
    }

    public mutating func update<Bytes: Sequence>(_ data: Bytes) where Bytes.Element == UInt8 {
        hasher.update(data: Array(data))
    }

    public func finalize() -> [UInt8] { Array(hasher.finalize()) }

    static func hexString<D: Sequence>(_ digest: D) -> String where D.Element == UInt8 {
        let digits: [UInt8] = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(64)
        for b in digest {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// The TaskManager dedupe key, exactly as `CustomHandlers::task_create` computes
/// it: `sha256(trim(type) . "\0" . json_encode(params, UNESCAPED_UNICODE|UNESCAPED_SLASHES))`.
public enum DedupeKey {
    public static func compute(type: String, params: JSONValue) -> String {
        compute(type: type, paramsJSON: PHPJSON.encode(params))
    }

    /// For a `params_json` string that is already PHP-encoded (as stored).
    public static func compute(type: String, paramsJSON: String) -> String {
        var bytes = Array(PHPTrim.trim(type).utf8)
        bytes.append(0)
        bytes.append(contentsOf: paramsJSON.utf8)
        return SHA256Digest.hex(bytes)
    }
}

/// PHP `trim()` with its default character list: space, \t, \n, \r, \0, \x0B.
public enum PHPTrim {
    public static func trim(_ s: String) -> String {
        let strip: Set<UInt8> = [0x20, 0x09, 0x0A, 0x0D, 0x00, 0x0B]
        let bytes = Array(s.utf8)
        var lo = 0, hi = bytes.count
        while lo < hi, strip.contains(bytes[lo]) { lo += 1 }
        while hi > lo, strip.contains(bytes[hi - 1]) { hi -= 1 }
        return String(decoding: bytes[lo..<hi], as: UTF8.self)
    }
}
