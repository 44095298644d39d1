/// A JSON value that keeps object key order.
///
/// Key order is part of the TaskManager dedupe key (`{"v":1,"n":2}` and
/// `{"n":2,"v":1}` are two different tasks), so params must never pass through
/// an unordered dictionary on their way to the wire. Integers and floats stay
/// distinct because PHP keeps them distinct (`5` is `integer`, `5.0` is
/// `number` in the schema validator).
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([JSONMember])
}

public struct JSONMember: Sendable, Hashable {
    public var key: String
    public var value: JSONValue
    public init(_ key: String, _ value: JSONValue) {
        self.key = key
        self.value = value
    }
}

extension JSONValue {
    /// Builds an object from ordered pairs; a later duplicate key replaces the
    /// value in the position of the first, as PHP and Python both do.
    public static func object(_ pairs: KeyValuePairs<String, JSONValue>) -> JSONValue {
        var members: [JSONMember] = []
        for (k, v) in pairs { members.setValue(v, forKey: k) }
        return .object(members)
    }

    public subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.first(where: { $0.key == key })?.value
    }

    public var objectMembers: [JSONMember]? {
        if case .object(let m) = self { return m }
        return nil
    }
    public var arrayValue: [JSONValue]? {
        if case .array(let a) = self { return a }
        return nil
    }
    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }
    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }
    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }
    /// An integer, also from a numeric string or a whole float: the PHP server
    /// sends ids both as `1` and as `"1"`.
    public var intValue: Int64? {
        switch self {
        case .int(let i): return i
        case .double(let d) where d.rounded() == d && abs(d) < 9.0e18: return Int64(d)
        case .string(let s): return Int64(s.trimmingCharacters(in: .whitespaces))
        default: return nil
        }
    }
    public var doubleValue: Double? {
        switch self {
        case .int(let i): return Double(i)
        case .double(let d): return d
        default: return nil
        }
    }

    /// Structural equality where `5` and `5.0` are the same number; object key
    /// order is ignored. Used to compare payloads across systems (parity),
    /// never for dedupe.
    public func semanticallyEquals(_ other: JSONValue) -> Bool {
        switch (self, other) {
        case (.null, .null): return true
        case (.bool(let a), .bool(let b)): return a == b
        case (.string(let a), .string(let b)): return a == b
        case (.int, _), (.double, _):
            guard let a = doubleValue, let b = other.doubleValue else { return false }
            if case .int(let x) = self, case .int(let y) = other { return x == y }
            return a == b
        case (.array(let a), .array(let b)):
            return a.count == b.count && zip(a, b).allSatisfy { $0.semanticallyEquals($1) }
        case (.object(let a), .object(let b)):
            guard a.count == b.count else { return false }
            for m in a {
                guard let o = b.first(where: { $0.key == m.key }), m.value.semanticallyEquals(o.value) else {
                    return false
                }
            }
            return true
        // PHP turns an empty object into `[]`; treat the two empties as equal.
        case (.array(let a), .object(let b)), (.object(let b), .array(let a)):
            return a.isEmpty && b.isEmpty
        default: return false
        }
    }
}

extension Array where Element == JSONMember {
    public mutating func setValue(_ value: JSONValue, forKey key: String) {
        if let i = firstIndex(where: { $0.key == key }) {
            self[i].value = value
        } else {
            append(JSONMember(key, value))
        }
    }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByFloatLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(nilLiteral: ()) { self = .null }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        var members: [JSONMember] = []
        for (k, v) in elements { members.setValue(v, forKey: k) }
        self = .object(members)
    }
}

import Foundation
