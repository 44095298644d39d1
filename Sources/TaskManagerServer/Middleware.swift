import Foundation
import TaskManagerModel
import Synchronization

/// The PHP SecurityMiddleware's fixed-window rate limiter, keyed by client IP
/// and normalised path. It runs before auth and also counts `/health`.
final class RateLimiter: Sendable {
    struct Window { var start: TimeInterval; var count: Int }
    let limit: ServerConfiguration.RateLimit
    private let windows = Mutex<[String: Window]>([:])

    init(_ limit: ServerConfiguration.RateLimit) { self.limit = limit }

    struct Decision { var allowed: Bool; var remaining: Int; var reset: Int64; var retryAfter: Int }

    func check(key: String, now: TimeInterval = Date().timeIntervalSince1970) -> Decision {
        windows.withLock { w in
            var entry = w[key] ?? Window(start: now, count: 0)
            if now - entry.start >= limit.window { entry = Window(start: now, count: 0) }
            let reset = entry.start + limit.window
            let retryAfter = max(1, Int((reset - now).rounded(.up)))
            if entry.count >= limit.maxRequests {
                w[key] = entry
                return Decision(allowed: false, remaining: 0, reset: Int64(reset), retryAfter: retryAfter)
            }
            entry.count += 1
            w[key] = entry
            if w.count > 10_000 { w = w.filter { now - $0.value.start < limit.window } }
            return Decision(
                allowed: true, remaining: limit.maxRequests - entry.count, reset: Int64(reset), retryAfter: retryAfter)
        }
    }
}

enum APIKey {
    /// Compares in time independent of where the strings differ (PHP uses
    /// `hash_equals`).
    static func matches(_ given: String, _ expected: String) -> Bool {
        let a = Array(given.utf8), b = Array(expected.utf8)
        var diff = UInt8(a.count == b.count ? 0 : 1)
        for i in 0..<max(a.count, b.count) {
            diff |= (i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0)
        }
        return diff == 0
    }
}

/// A validation rule of the `api_validations` table.
struct FieldRule {
    enum Kind: String { case string, integer, object }
    var name: String
    var kind: Kind
    var missingMessage: String
    var minLength: Int? = nil
    var minimum: Int64? = nil
    var maximum: Int64? = nil
}

enum RequestValidation {
    static let createTask = [
        FieldRule(name: "type", kind: .string, missingMessage: "Task type is required", minLength: 1),
        FieldRule(name: "params", kind: .object, missingMessage: "Task parameters are required"),
    ]
    static let claim = [
        FieldRule(name: "worker_id", kind: .string, missingMessage: "Worker ID is required", minLength: 1)
    ]
    static let progress = [
        FieldRule(name: "worker_id", kind: .string, missingMessage: "Worker ID is required", minLength: 1),
        FieldRule(
            name: "progress", kind: .integer, missingMessage: "Progress must be between 0 and 100", minimum: 0,
            maximum: 100),
    ]

    /// Every failing rule adds one message; a missing value stops the checks
    /// of that field, as does a type mismatch.
    static func validate(_ body: JSONValue, _ rules: [FieldRule]) -> [String] {
        var details: [String] = []
        for rule in rules {
            let value = body[rule.name]
            if value == nil || value == .null || value == .string("") {
                details.append(rule.missingMessage)
                continue
            }
            guard let value else { continue }
            let typeOK: Bool
            switch rule.kind {
            case .string: typeOK = value.stringValue != nil
            case .integer: if case .int = value { typeOK = true } else { typeOK = false }
            case .object: typeOK = PHPJSON.isAssociative(value)
            }
            if !typeOK {
                details.append("Field '\(rule.name)' must be of type \(rule.kind.rawValue)")
                continue
            }
            if let min = rule.minLength, let s = value.stringValue, s.utf8.count < min {
                details.append("Field '\(rule.name)' must be at least \(min) characters")
            }
            if let min = rule.minimum, let n = value.intValue, n < min {
                details.append("Field '\(rule.name)' must be at least \(min)")
            }
            if let max = rule.maximum, let n = value.intValue, n > max {
                details.append("Field '\(rule.name)' must be at most \(max)")
            }
        }
        return details
    }
}

extension JSONValue {
    /// PHP truthiness (`complete` reads `success` this way: `"false"` is true).
    var phpTruthy: Bool {
        switch self {
        case .null: return false
        case .bool(let b): return b
        case .int(let i): return i != 0
        case .double(let d): return d != 0
        case .string(let s): return !(s.isEmpty || s == "0")
        case .array(let a): return !a.isEmpty
        case .object(let m): return !m.isEmpty
        }
    }

    /// A scalar as PHP would turn it into a string for `trim()`.
    var phpScalarString: String? {
        switch self {
        case .string(let s): return s
        case .int, .double, .bool: return PHPJSON.phpString(self)
        default: return nil
        }
    }
}
