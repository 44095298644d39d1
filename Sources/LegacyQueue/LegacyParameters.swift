import TaskManagerModel

/// Turns the raw bytes of `task_queue.parameters` into TaskManager params, or
/// a reason the row cannot be forwarded (PRODUCT.md section 6).
public enum LegacyParameters {
    public enum Problem: Error, Sendable, Equatable, CustomStringConvertible {
        case null
        case empty
        case invalidUTF8
        case notParseable(json: String, python: String)
        /// A number no 64-bit float holds (`1e400`): forwarding it would send `0`.
        case numberOutOfRange(String)
        case notAnObject(String)
        case emptyObject
        case tooLarge(bytes: Int, limit: Int)

        public var description: String {
            switch self {
            case .null: return "parameters is NULL"
            case .empty: return "parameters is empty"
            case .invalidUTF8: return "parameters is not valid UTF-8"
            case .notParseable(let j, let p): return "parameters is neither JSON (\(j)) nor a Python literal (\(p))"
            case .numberOutOfRange(let m):
                return "parameters holds a number out of range (\(m)); it cannot be sent unchanged"
            case .notAnObject(let t): return "parameters is \(t), not an object"
            case .emptyObject: return "parameters is an empty object; TaskManager requires non-empty params"
            case .tooLarge(let b, let l):
                return "parameters encode to \(b) bytes, above the API body limit of \(l) bytes"
            }
        }

        /// A short machine-readable reason code (quarantine, metrics).
        public var code: String {
            switch self {
            case .null: return "params_null"
            case .empty: return "params_empty"
            case .invalidUTF8: return "params_invalid_utf8"
            case .notParseable: return "params_unparseable"
            case .numberOutOfRange: return "params_number_out_of_range"
            case .notAnObject: return "params_not_object"
            case .emptyObject: return "params_empty_object"
            case .tooLarge: return "params_too_large"
            }
        }
    }

    public enum Source: String, Sendable { case json, pythonLiteral = "python-literal" }

    /// JSON first; Python-repr text through the safe literal parser.
    public static func decode(_ bytes: [UInt8]?, maxBodyBytes: Int = 1_048_576) -> Result<(JSONValue, Source), Problem>
    {
        guard let bytes else { return .failure(.null) }
        // Checked before parsing, so a huge row costs a length check inside
        // the capture transaction, not a parse (re-encoding could only shrink
        // it by its whitespace; such rows are refused all the same).
        if bytes.count > maxBodyBytes { return .failure(.tooLarge(bytes: bytes.count, limit: maxBodyBytes)) }
        guard String(validating: bytes, as: UTF8.self) != nil else { return .failure(.invalidUTF8) }
        let text = String(decoding: bytes, as: UTF8.self)
        if text.allSatisfy({ $0.isWhitespace }) { return .failure(.empty) }
        let value: JSONValue
        let source: Source
        do {
            value = try JSONParser.parse(bytes)
            source = .json
        } catch let jsonError {
            if jsonError.kind == .numberOutOfRange { return .failure(.numberOutOfRange(jsonError.description)) }
            do {
                value = try PythonLiteral.parse(text)
                source = .pythonLiteral
            } catch {
                if error.message.hasPrefix("number out of range") {
                    return .failure(.numberOutOfRange(error.description))
                }
                return .failure(.notParseable(json: jsonError.message, python: error.message))
            }
        }
        guard case .object(let members) = value else {
            return .failure(.notAnObject(JSONSchemaValidator.phpType(value)))
        }
        if members.isEmpty { return .failure(.emptyObject) }
        // The encoded size is checked by whoever encodes the request body.
        return .success((value, source))
    }
}
