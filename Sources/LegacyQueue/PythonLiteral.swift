import TaskManagerModel

/// A safe parser for Python literal text (what `repr()` of a dict writes), so
/// rows that legacy code read with `eval()` can be forwarded without ever
/// evaluating anything. It accepts what `ast.literal_eval` accepts for data:
/// dicts, lists, tuples, strings (with prefixes r/u and adjacent
/// concatenation), ints, floats, True/False/None, unary minus. Sets, bytes,
/// complex numbers and any name or call are refused.
public enum PythonLiteral {
    public struct ParseError: Error, CustomStringConvertible, Sendable {
        public var message: String
        public var offset: Int
        public var description: String { "\(message) at offset \(offset)" }
    }

    public static func parse(_ text: String) throws(ParseError) -> JSONValue {
        var p = Parser(scalars: Array(text.unicodeScalars))
        p.skipSpace()
        let v = try p.value(depth: 0)
        p.skipSpace()
        guard p.i == p.scalars.count else { throw p.fail("unexpected trailing text") }
        return v
    }

    struct Parser {
        let scalars: [Unicode.Scalar]
        var i = 0

        func fail(_ m: String) -> ParseError { ParseError(message: m, offset: i) }
        var peek: Unicode.Scalar? { i < scalars.count ? scalars[i] : nil }

        mutating func skipSpace() {
            while let c = peek, c == " " || c == "\t" || c == "\n" || c == "\r" { i += 1 }
        }

        mutating func value(depth: Int) throws(ParseError) -> JSONValue {
            guard depth < 256 else { throw fail("nesting too deep") }
            skipSpace()
            guard let c = peek else { throw fail("unexpected end") }
            switch c {
            case "{": return try dict(depth)
            case "[": return .array(try sequence(close: "]", depth))
            case "(":
                return .array(try sequence(close: ")", depth))
            case "'", "\"": return .string(try strings())
            case "-", "+", "0"..."9", ".": return try number()
            default:
                // A letter is a string prefix only when a quote follows it:
                // `False` starts with F but is a name, `f'x'` is an f-string.
                switch stringPrefix() {
                case .none: return try word()
                case .some(let p) where p.contains("b") || p.contains("f"):
                    throw fail("bytes and f-strings are not data literals")
                case .some: return .string(try strings())
                }
            }
        }

        /// The lowercased prefix letters (r, u, b, f; at most two) of a string
        /// literal starting at the cursor, or nil when no quote follows them.
        func stringPrefix(at start: Int? = nil) -> String? {
            var j = start ?? i
            var prefix = ""
            while j < scalars.count, prefix.count < 2, "rRuUbBfF".unicodeScalars.contains(scalars[j]) {
                prefix.unicodeScalars.append(scalars[j])
                j += 1
            }
            guard !prefix.isEmpty, j < scalars.count, scalars[j] == "'" || scalars[j] == "\"" else { return nil }
            return prefix.lowercased()
        }

        mutating func word() throws(ParseError) -> JSONValue {
            let start = i
            while let c = peek, c.properties.isAlphabetic || c == "_" || ("0"..."9").contains(c) { i += 1 }
            switch String(String.UnicodeScalarView(scalars[start..<i])) {
            case "True": return .bool(true)
            case "False": return .bool(false)
            case "None": return .null
            case "": throw fail("unexpected character")
            case let w: i = start; throw fail("'\(w)' is not a literal (names and calls are never evaluated)")
            }
        }

        mutating func dict(_ depth: Int) throws(ParseError) -> JSONValue {
            i += 1
            var members: [JSONMember] = []
            skipSpace()
            if peek == "}" { i += 1; return .object(members) }
            while true {
                skipSpace()
                let keyStart = i
                let key = try value(depth: depth + 1)
                let keyText: String
                switch key {
                case .string(let s): keyText = s
                case .int(let n): keyText = String(n)
                case .bool(let b): keyText = b ? "true" : "false"
                case .null: keyText = "null"
                case .double(let d): keyText = PHPJSON.formatDouble(d)
                default: i = keyStart; throw fail("dict key must be a string or number")
                }
                skipSpace()
                guard peek == ":" else {
                    if peek == "," || peek == "}" { throw fail("sets are not supported") }
                    throw fail("expected ':'")
                }
                i += 1
                members.setValue(try value(depth: depth + 1), forKey: keyText)
                skipSpace()
                if peek == "," {
                    i += 1
                    skipSpace()
                    if peek == "}" { i += 1; return .object(members) }
                    continue
                }
                if peek == "}" { i += 1; return .object(members) }
                throw fail("expected ',' or '}'")
            }
        }

        mutating func sequence(close: Unicode.Scalar, _ depth: Int) throws(ParseError) -> [JSONValue] {
            i += 1
            var items: [JSONValue] = []
            skipSpace()
            if peek == close { i += 1; return items }
            while true {
                items.append(try value(depth: depth + 1))
                skipSpace()
                if peek == "," {
                    i += 1
                    skipSpace()
                    if peek == close { i += 1; return items }
                    continue
                }
                if peek == close { i += 1; return items }
                throw fail("expected ',' or '\(close)'")
            }
        }

        mutating func strings() throws(ParseError) -> String {
            var out = ""
            repeat {
                out += try string()
                skipSpace()
            } while peek == "'" || peek == "\"" || stringPrefix() != nil
            return out
        }

        mutating func string() throws(ParseError) -> String {
            var raw = false
            if let prefix = stringPrefix() {
                if prefix.contains("b") || prefix.contains("f") {
                    throw fail("bytes and f-strings are not data literals")
                }
                raw = prefix.contains("r")
                i += prefix.unicodeScalars.count
            }
            guard let q = peek else { throw fail("unexpected end") }
            let triple = i + 2 < scalars.count && scalars[i + 1] == q && scalars[i + 2] == q
            i += triple ? 3 : 1
            var out = String.UnicodeScalarView()
            while true {
                guard let c = peek else { throw fail("unterminated string") }
                if c == q {
                    if !triple { i += 1; return String(out) }
                    if i + 2 < scalars.count, scalars[i + 1] == q, scalars[i + 2] == q { i += 3; return String(out) }
                }
                if !triple && (c == "\n" || c == "\r") { throw fail("newline in string") }
                i += 1
                if c != "\\" || raw {
                    if c == "\\" && raw, let n = peek { out.append(c); out.append(n); i += 1; continue }
                    out.append(c)
                    continue
                }
                guard let e = peek else { throw fail("unterminated escape") }
                i += 1
                switch e {
                case "\n": break
                case "\\": out.append("\\")
                case "'": out.append("'")
                case "\"": out.append("\"")
                case "a": out.append("\u{07}")
                case "b": out.append("\u{08}")
                case "f": out.append("\u{0C}")
                case "n": out.append("\n")
                case "r": out.append("\r")
                case "t": out.append("\t")
                case "v": out.append("\u{0B}")
                case "x": out.append(try hexScalar(2))
                case "u": out.append(try hexScalar(4))
                case "U": out.append(try hexScalar(8))
                case "0"..."7":
                    var v = e.value - 48
                    var n = 1
                    while n < 3, let d = peek, ("0"..."7").contains(d) { v = v * 8 + d.value - 48; i += 1; n += 1 }
                    guard let s = Unicode.Scalar(v) else { throw fail("bad octal escape") }
                    out.append(s)
                default:
                    out.append("\\")
                    out.append(e)
                }
            }
        }

        mutating func hexScalar(_ n: Int) throws(ParseError) -> Unicode.Scalar {
            guard i + n <= scalars.count else { throw fail("bad hex escape") }
            var v: UInt32 = 0
            for _ in 0..<n {
                guard
                    let d = scalars[i].properties.numericType != nil || scalars[i].isASCII
                        ? Int(String(scalars[i]), radix: 16) : nil
                else { throw fail("bad hex escape") }
                v = v * 16 + UInt32(d)
                i += 1
            }
            guard let s = Unicode.Scalar(v) else { throw fail("escape is not a Unicode scalar") }
            return s
        }

        mutating func number() throws(ParseError) -> JSONValue {
            var negative = false
            while let c = peek, c == "-" || c == "+" {
                if c == "-" { negative.toggle() }
                i += 1
                skipSpace()
            }
            let start = i
            var isFloat = false
            while let c = peek,
                ("0"..."9").contains(c) || c == "_" || c == "." || c == "e" || c == "E"
                    || ((c == "-" || c == "+") && i > start && (scalars[i - 1] == "e" || scalars[i - 1] == "E"))
            {
                if c == "." || c == "e" || c == "E" { isFloat = true }
                i += 1
            }
            if let c = peek, c == "j" || c == "J" { throw fail("complex numbers are not data literals") }
            let text = String(String.UnicodeScalarView(scalars[start..<i])).replacingOccurrences(of: "_", with: "")
            if text.isEmpty {
                if let w = try? word(), case .null = w { throw fail("unexpected name after sign") }
                throw fail("bad number")
            }
            if !isFloat {
                // Python ints are unbounded; beyond 64 bits they become floats,
                // as PHP's json_decode does.
                if let v = Int64(text) { return .int(negative ? -v : v) }
                if text.count > 1, text.hasPrefix("0"), text.allSatisfy({ $0 == "0" }) == false {
                    throw fail("leading zeros")
                }
                if let d = Double(text), d.isFinite { return .double(negative ? -d : d) }
                throw fail("number out of range: \(text.prefix(40)) is not a finite 64-bit float")
            }
            guard let d = Double(text) else { throw fail("bad number") }
            guard d.isFinite else { throw fail("number out of range: \(text.prefix(40)) is not a finite 64-bit float") }
            return .double(negative ? -d : d)
        }
    }
}

import Foundation
