/// `json_encode($value, JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES)` as
/// PHP 8 produces it, byte for byte.
///
/// The TaskManager stores params as this string and hashes it for the dedupe
/// key, so the embedded server and any key the bridge predicts must agree with
/// the PHP server exactly:
/// - an empty object is `[]` (PHP decodes `{}` to an empty array);
/// - an object whose keys are "0", "1", ... in order is a PHP list, so it is
///   encoded as a JSON array;
/// - floats use PHP's shortest round-trip form (`serialize_precision = -1`):
///   `0.1`, `1.0e+25`, `1.5e-7`, and a whole float is `5` (PHP only writes
///   `5.0` with JSON_PRESERVE_ZERO_FRACTION, which the server does not pass);
/// - U+2028 and U+2029 are escaped, `/` and other non-ASCII are not;
///   control characters become `\u00xx` with lowercase hex.
public enum PHPJSON {
    public static func encode(_ value: JSONValue) -> String {
        var out = ""
        out.reserveCapacity(64)
        append(value, to: &out)
        return out
    }

    static func append(_ value: JSONValue, to out: inout String) {
        switch value {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .double(let d): out += formatDouble(d)
        case .string(let s): appendString(s, to: &out)
        case .array(let items):
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += "," }
                append(item, to: &out)
            }
            out += "]"
        case .object(let members):
            if isPHPList(members) {
                append(.array(members.map(\.value)), to: &out)
                return
            }
            out += "{"
            for (i, m) in members.enumerated() {
                if i > 0 { out += "," }
                appendString(m.key, to: &out)
                out += ":"
                append(m.value, to: &out)
            }
            out += "}"
        }
    }

    /// PHP turns canonical integer-string keys into integer keys; an array whose
    /// keys are then exactly 0..n-1 in order is a list.
    static func isPHPList(_ members: [JSONMember]) -> Bool {
        for (i, m) in members.enumerated() where m.key != String(i) { return false }
        return true
    }

    /// What PHP's type check sees: `{}`, `[]` and `{"0":..}` are arrays, any
    /// other non-empty object is an object.
    public static func isAssociative(_ value: JSONValue) -> Bool {
        if case .object(let m) = value { return !isPHPList(m) }
        return false
    }

    static let hex: [Character] = Array("0123456789abcdef")

    static func appendString(_ s: String, to out: inout String) {
        out += "\""
        // Most strings need no escaping: copy them whole.
        var plain = true
        var previous: (UInt8, UInt8) = (0, 0)
        for b in s.utf8 {
            // '"', '\\', control characters, and U+2028/2029 (E2 80 A8/A9).
            if b < 0x20 || b == 0x22 || b == 0x5C || ((b == 0xA8 || b == 0xA9) && previous == (0xE2, 0x80)) {
                plain = false
                break
            }
            previous = (previous.1, b)
        }
        if plain {
            out += s
            out += "\""
            return
        }
        for u in s.unicodeScalars {
            switch u.value {
            case 0x22: out += "\\\""
            case 0x5C: out += "\\\\"
            case 0x08: out += "\\b"
            case 0x0C: out += "\\f"
            case 0x0A: out += "\\n"
            case 0x0D: out += "\\r"
            case 0x09: out += "\\t"
            case 0x2028: out += "\\u2028"
            case 0x2029: out += "\\u2029"
            case 0..<0x20:
                out += "\\u00"
                out.append(hex[Int(u.value >> 4)])
                out.append(hex[Int(u.value & 0xF)])
            default: out.unicodeScalars.append(u)
            }
        }
        out += "\""
    }

    /// `php_gcvt(value, 17, '.', 'e')` fed with the shortest round-trip digits
    /// (`zend_dtoa` mode 0), which is what `serialize_precision = -1` selects.
    /// JSON as a client sends it to PHP: `encode`, except that whole floats
    /// keep their `.0`. `json_encode` writes 5.0 as `5`, which PHP decodes back
    /// as an integer, and the server's validator refuses integers where a schema
    /// says `"type":"number"` (spec section 17.3). The server hashes its own
    /// re-encoding, so the dedupe key is `encode`'s.
    public static func encodeWire(_ value: JSONValue) -> String {
        switch value {
        case .double(let d):
            let s = formatDouble(d)
            return !d.isFinite || s.contains(where: { $0 == "." || $0 == "e" || $0 == "E" }) ? s : s + ".0"
        case .array(let items):
            return "[" + items.map(encodeWire).joined(separator: ",") + "]"
        case .object(let members):
            return "{" + members.map { encode(.string($0.key)) + ":" + encodeWire($0.value) }.joined(separator: ",")
                + "}"
        case .null, .bool, .int, .string:
            return encode(value)
        }
    }

    public static func formatDouble(_ d: Double) -> String {
        guard d.isFinite else { return "0" }
        let (negative, digits, decpt) = shortestDigits(d)
        var out = negative ? "-" : ""
        if digits == "0" {
            return out + "0"
        }
        let ds = Array(digits)
        if decpt < 0 ? decpt < -3 : decpt > 17 {
            let e = decpt - 1
            out.append(ds[0])
            out += "."
            out += ds.count > 1 ? String(ds[1...]) : "0"
            out += e < 0 ? "e-" : "e+"
            out += String(abs(e))
            return out
        }
        if decpt <= 0 {
            out += "0." + String(repeating: "0", count: -decpt) + digits
            return out
        }
        if ds.count <= decpt {
            out += digits + String(repeating: "0", count: decpt - ds.count)
        } else {
            out += String(ds[..<decpt]) + "." + String(ds[decpt...])
        }
        return out
    }

    /// Digits without leading/trailing zeros and the decimal point position, so
    /// that value = 0.DIGITS * 10^decpt.
    static func shortestDigits(_ d: Double) -> (negative: Bool, digits: String, decpt: Int) {
        var text = d.description  // Swift prints the shortest round-trip form
        var negative = false
        if text.hasPrefix("-") {
            negative = true
            text.removeFirst()
        }
        var exponent = 0
        if let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            exponent = Int(text[text.index(after: e)...]) ?? 0
            text = String(text[..<e])
        }
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        let intPart = String(parts[0])
        let fracPart = parts.count > 1 ? String(parts[1]) : ""
        var digits = Array(intPart + fracPart)
        var decpt = intPart.count + exponent
        while let f = digits.first, f == "0" {
            digits.removeFirst()
            decpt -= 1
        }
        while let l = digits.last, l == "0" { digits.removeLast() }
        if digits.isEmpty { return (negative, "0", 1) }
        return (negative, String(digits), decpt)
    }

    /// PHP's string conversion of a scalar, as used when PHP interpolates schema
    /// values into error messages (`implode`, `"$n"`).
    public static func phpString(_ value: JSONValue) -> String {
        switch value {
        case .null: return ""
        case .bool(let b): return b ? "1" : ""
        case .int(let i): return String(i)
        case .double(let d):
            // PHP 8 prints floats with precision 14 in string context, but
            // whole values without a fraction; the shortest form is close enough
            // for the values schemas use.
            let s = formatDouble(d)
            return s.replacingOccurrences(of: "e+", with: "E+").replacingOccurrences(of: "e-", with: "E-")
        case .string(let s): return s
        case .array, .object: return "Array"
        }
    }
}

import Foundation
