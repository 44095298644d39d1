/// Errors of the TaskManager client. None of them ever holds the API key:
/// every message passes through `redacting` before it is stored.
public enum TaskManagerError: Error, Sendable, Equatable, CustomStringConvertible {
    case configuration(String)
    /// 401: missing or wrong key.
    case unauthorized(String)
    /// 403: the task is claimed by another worker.
    case forbidden(String)
    /// 404: unknown task, task type or route.
    case notFound(String)
    /// 400: request or parameter validation (`details` for router validation).
    case validation(String, details: [String])
    /// 413: body larger than the server accepts.
    case payloadTooLarge(String)
    /// 429, with `Retry-After` in seconds when the server sent one.
    case rateLimited(retryAfter: Double?, message: String)
    /// Any other status.
    case server(status: Int, message: String)
    /// Connection refused, reset, timeout, DNS.
    case transport(String)
    /// A body that is not the TaskManager envelope (HTML error page, garbage).
    case undecodable(status: Int, snippet: String)

    public var description: String {
        switch self {
        case .configuration(let m): return "configuration: \(m)"
        case .unauthorized(let m): return "unauthorized (401): \(m)"
        case .forbidden(let m): return "forbidden (403): \(m)"
        case .notFound(let m): return "not found (404): \(m)"
        case .validation(let m, let d):
            return "rejected (400): \(m)" + (d.isEmpty ? "" : " [\(d.joined(separator: "; "))]")
        case .payloadTooLarge(let m): return "too large (413): \(m)"
        case .rateLimited(let r, let m):
            return "rate limited (429)" + (r.map { ", retry after \($0) s" } ?? "") + ": \(m)"
        case .server(let s, let m): return "server error (\(s)): \(m)"
        case .transport(let m): return "transport: \(m)"
        case .undecodable(let s, let snippet): return "undecodable response (HTTP \(s)): \(snippet)"
        }
    }

    /// Worth retrying later with the same request: the API may recover.
    public var isTransient: Bool {
        switch self {
        case .transport, .rateLimited, .undecodable: return true
        case .server(let status, _): return status >= 500 || status == 408
        default: return false
        }
    }

    /// The API refused this request for what it is: sending it again will not
    /// help until the input or the type registration changes.
    public var isPermanentRejection: Bool {
        switch self {
        case .validation, .notFound, .payloadTooLarge: return true
        default: return false
        }
    }

    func redacting(_ secret: String) -> TaskManagerError {
        guard !secret.isEmpty else { return self }
        func r(_ s: String) -> String { s.replacingOccurrences(of: secret, with: "[redacted]") }
        switch self {
        case .configuration(let m): return .configuration(r(m))
        case .unauthorized(let m): return .unauthorized(r(m))
        case .forbidden(let m): return .forbidden(r(m))
        case .notFound(let m): return .notFound(r(m))
        case .validation(let m, let d): return .validation(r(m), details: d.map(r))
        case .payloadTooLarge(let m): return .payloadTooLarge(r(m))
        case .rateLimited(let a, let m): return .rateLimited(retryAfter: a, message: r(m))
        case .server(let s, let m): return .server(status: s, message: r(m))
        case .transport(let m): return .transport(r(m))
        case .undecodable(let s, let m): return .undecodable(status: s, snippet: r(m))
        }
    }
}
