/// Text from outside (answer bodies, legacy rows) made safe for a log line or
/// an error message: control characters and invalid UTF-8 are escaped, so a
/// garbage answer cannot turn a log file binary or fake a line break.
public enum LogSafe {
    /// Escapes C0/C1 control characters (newline and tab included) as `\u{..}`;
    /// everything printable stays as it is.
    public static func escape(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: needsEscape) else { return text }
        var out = String.UnicodeScalarView()
        for u in text.unicodeScalars {
            if needsEscape(u) {
                out.append(contentsOf: "\\u{\(String(u.value, radix: 16))}".unicodeScalars)
            } else {
                out.append(u)
            }
        }
        return String(out)
    }

    /// Bytes that may not be UTF-8: each invalid byte becomes `\xNN`, then
    /// control characters are escaped as in `escape(_:)`.
    public static func escape(bytes: [UInt8]) -> String {
        if let s = String(validating: bytes, as: UTF8.self) { return escape(s) }
        var out = ""
        var i = 0
        while i < bytes.count {
            let n = sequenceLength(bytes, at: i)
            if n > 0, let s = String(validating: bytes[i..<i + n], as: UTF8.self) {
                out += escape(s)
                i += n
            } else {
                out += "\\x" + (bytes[i] < 16 ? "0" : "") + String(bytes[i], radix: 16)
                i += 1
            }
        }
        return out
    }

    static func needsEscape(_ u: Unicode.Scalar) -> Bool {
        u.value < 0x20 || (0x7F...0x9F).contains(u.value) || u.value == 0x2028 || u.value == 0x2029
    }

    /// Length of a plausible UTF-8 sequence at `i` from its lead byte (0 if none).
    static func sequenceLength(_ b: [UInt8], at i: Int) -> Int {
        let lead = b[i]
        let n: Int
        switch lead {
        case 0x00...0x7F: n = 1
        case 0xC2...0xDF: n = 2
        case 0xE0...0xEF: n = 3
        case 0xF0...0xF4: n = 4
        default: return 0
        }
        return i + n <= b.count ? n : 0
    }
}
