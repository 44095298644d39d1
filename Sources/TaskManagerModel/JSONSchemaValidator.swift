import Foundation

/// The JSON Schema subset of the PHP `JsonSchemaValidator`, with its messages
/// and its quirks kept, because the bridge must predict what the real server
/// rejects (dry-run) and the embedded server must reject the same params:
/// - types are PHP types: `5` is only `integer`, `5.0` only `number`, `{}` and
///   `[]` are `array`;
/// - `required` treats a null value as missing; its path is `<path>.<key>`, so
///   top-level properties read `.v`;
/// - string lengths count UTF-8 bytes;
/// - item paths are garbled the way PHP's `"$path[$index]"` garbles them (it
///   indexes a character of the path string);
/// - `oneOf`, `anyOf`, `format`, `default`, `$ref` and everything else is ignored.
public struct JSONSchemaValidator: Sendable {
    public init() {}

    public func validate(_ data: JSONValue, schema: JSONValue) -> [String] {
        var errors: [String] = []
        check(data, schema: schema, path: "", errors: &errors)
        return errors
    }

    /// The PHP type name of a decoded value.
    public static func phpType(_ v: JSONValue) -> String {
        switch v {
        case .null: return "null"
        case .bool: return "boolean"
        case .int: return "integer"
        case .double: return "number"
        case .string: return "string"
        case .array: return "array"
        case .object: return PHPJSON.isAssociative(v) ? "object" : "array"
        }
    }

    private func check(_ data: JSONValue, schema: JSONValue, path: String, errors: inout [String]) {
        guard case .object = schema else { return }
        let actual = Self.phpType(data)

        var declaredType: String?
        if let t = schema["type"] {
            let allowed: [String]
            switch t {
            case .string(let s): allowed = [s]
            case .array(let a): allowed = a.compactMap(\.stringValue)
            default: allowed = [PHPJSON.phpString(t)]
            }
            if !allowed.contains(actual) {
                errors.append("Type mismatch at \(path): expected \(allowed.joined(separator: "|")), got \(actual)")
                return
            }
            declaredType = actual
        }

        let members: [JSONMember]? = {
            switch data {
            case .object(let m): return m
            case .array(let a): return a.enumerated().map { JSONMember(String($0.offset), $0.element) }
            default: return nil
            }
        }()

        if let members, let required = schema["required"]?.arrayValue {
            for key in required.compactMap(\.stringValue) {
                let present = members.first(where: { $0.key == key }).map { !$0.value.isNull } ?? false
                if !present { errors.append("Missing required property: \(path).\(key)") }
            }
        }

        if let members, let properties = schema["properties"]?.objectMembers {
            for prop in properties {
                // PHP guards with isset(): a null property is not checked further.
                guard let value = members.first(where: { $0.key == prop.key })?.value, !value.isNull else { continue }
                check(value, schema: prop.value, path: path.isEmpty ? prop.key : "\(path).\(prop.key)", errors: &errors)
            }
            if case .bool(false) = schema["additionalProperties"] ?? .null {
                for m in members where !properties.contains(where: { $0.key == m.key }) {
                    errors.append("Additional property not allowed: \(path.isEmpty ? m.key : "\(path).\(m.key)")")
                }
            }
        }

        if let itemSchema = schema["items"], let items = listItems(data) {
            let pathBytes = Array(path.utf8)
            for (i, item) in items.enumerated() {
                let garbled = i < pathBytes.count ? String(decoding: [pathBytes[i]], as: UTF8.self) : ""
                check(item, schema: itemSchema, path: garbled, errors: &errors)
            }
        }

        if declaredType == "string", case .string(let s) = data {
            let length = s.utf8.count
            if let min = schema["minLength"]?.intValue, length < min {
                errors.append("String too short at \(path): minimum length is \(min)")
            }
            if let max = schema["maxLength"]?.intValue, length > max {
                errors.append("String too long at \(path): maximum length is \(max)")
            }
            if let pattern = schema["pattern"]?.stringValue {
                if let regex = try? NSRegularExpression(pattern: pattern) {
                    let range = NSRange(s.startIndex..<s.endIndex, in: s)
                    if regex.firstMatch(in: s, range: range) == nil {
                        errors.append("String does not match pattern at \(path)")
                    }
                } else {
                    errors.append("Invalid regex pattern in schema at \(path)")
                }
            }
        }

        if let n = data.doubleValue {
            if let minV = schema["minimum"], let min = minV.doubleValue, n < min || exceeds(data, minV, below: true) {
                errors.append("Number too small at \(path): minimum is \(PHPJSON.phpString(minV))")
            }
            if let maxV = schema["maximum"], let max = maxV.doubleValue, n > max || exceeds(data, maxV, below: false) {
                errors.append("Number too large at \(path): maximum is \(PHPJSON.phpString(maxV))")
            }
        }

        if let items = listItems(data) {
            if let min = schema["minItems"]?.intValue, items.count < min {
                errors.append("Array too short at \(path): minimum items is \(min)")
            }
            if let max = schema["maxItems"]?.intValue, items.count > max {
                errors.append("Array too long at \(path): maximum items is \(max)")
            }
        }

        if let options = schema["enum"]?.arrayValue, !options.contains(where: { Self.strictEquals($0, data) }) {
            errors.append("Value at \(path) must be one of: \(options.map(PHPJSON.phpString).joined(separator: ", "))")
        }
    }

    /// Exact integer comparison where doubles would round (PHP_INT_MAX vs a
    /// maximum of PHP_INT_MAX - 1 must still fail).
    private func exceeds(_ data: JSONValue, _ bound: JSONValue, below: Bool) -> Bool {
        guard case .int(let a) = data, case .int(let b) = bound else { return false }
        return below ? a < b : a > b
    }

    private func listItems(_ data: JSONValue) -> [JSONValue]? {
        switch data {
        case .array(let a): return a
        case .object(let m) where !PHPJSON.isAssociative(data): return m.map(\.value)
        default: return nil
        }
    }

    /// PHP `in_array(..., true)`: same type and value; arrays compare by
    /// key/value pairs.
    static func strictEquals(_ a: JSONValue, _ b: JSONValue) -> Bool {
        switch (a, b) {
        case (.int(let x), .int(let y)): return x == y
        case (.double(let x), .double(let y)): return x == y
        case (.int, .double), (.double, .int): return false
        default:
            return PHPJSON.encode(a) == PHPJSON.encode(b)
                && JSONSchemaValidator.phpType(a) == JSONSchemaValidator.phpType(b)
        }
    }
}
