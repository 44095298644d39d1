import Foundation
import Synchronization

/// Settings of the embedded TaskManager; names follow the PHP `config.php`
/// constants they mirror.
public struct ServerConfiguration: Sendable {
    /// `API_KEY`. Never logged, never stored.
    public var apiKey: String
    /// `TASK_CLAIM_TIMEOUT`, the lease length.
    public var claimTimeout: TimeInterval = 300
    /// `MAX_TASK_ATTEMPTS`.
    public var maxAttempts: Int64 = 3
    /// `MAX_REQUEST_SIZE` in bytes (413 above it).
    public var maxRequestSize: Int = 1_048_576
    /// Largest PHP encoding of params a create may store (`MAX_PARAMS_BYTES`);
    /// nil: no limit. The PHP server's TEXT column holds 65,535 bytes.
    public var maxParamsBytes: Int?
    /// `RATE_LIMIT_*`; nil disables the limiter (the PHP default).
    public var rateLimit: RateLimit?
    /// `CORS_ALLOWED_ORIGINS`: nil or ["*"] answers `*`.
    public var corsAllowedOrigins: [String]?
    /// `ENABLE_TASK_HISTORY`.
    public var enableHistory = true
    /// `ENABLE_SCHEMA_VALIDATION`.
    public var enableSchemaValidation = true
    /// `ENABLE_SECURITY_HEADERS`.
    public var enableSecurityHeaders = false

    public struct RateLimit: Sendable {
        public var maxRequests: Int
        public var window: TimeInterval
        public init(maxRequests: Int = 100, window: TimeInterval = 60) {
            self.maxRequests = maxRequests
            self.window = window
        }
    }

    /// The server's notion of now (leases, timestamps).
    public var clock = ServerClock()

    public init(apiKey: String) {
        self.apiKey = apiKey
    }

    /// Reads `TASK_CLAIM_TIMEOUT`, `MAX_TASK_ATTEMPTS`, `MAX_REQUEST_SIZE`,
    /// `RATE_LIMIT_ENABLED`/`RATE_LIMIT_MAX_REQUESTS`/`RATE_LIMIT_TIME_WINDOW`
    /// and `CORS_ALLOWED_ORIGINS` from the environment.
    public mutating func applyEnvironment(_ env: [String: String]) {
        if let v = env["TASK_CLAIM_TIMEOUT"].flatMap(Double.init), v > 0 { claimTimeout = v }
        if let v = env["MAX_TASK_ATTEMPTS"].flatMap(Int64.init), v > 0 { maxAttempts = v }
        if let v = env["MAX_REQUEST_SIZE"].flatMap(Int.init), v > 0 { maxRequestSize = v }
        if let v = env["MAX_PARAMS_BYTES"].flatMap(Int.init), v > 0 { maxParamsBytes = v }
        if let e = env["RATE_LIMIT_ENABLED"], ["1", "true", "yes"].contains(e.lowercased()) {
            rateLimit = RateLimit(
                maxRequests: env["RATE_LIMIT_MAX_REQUESTS"].flatMap(Int.init) ?? 100,
                window: env["RATE_LIMIT_TIME_WINDOW"].flatMap(Double.init) ?? 60)
        }
        if let o = env["CORS_ALLOWED_ORIGINS"] {
            corsAllowedOrigins = o.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        }
    }
}

/// The embedded server's "now": the wall clock, plus an offset that tests move
/// forward instead of sleeping through a lease (a test that needs the machine
/// to be fast enough within a real second is flaky on a loaded CI machine).
public final class ServerClock: Sendable {
    private let offset = Mutex<Double>(0)

    public init() {}

    public func now() -> Date { Date().addingTimeInterval(offset.withLock { $0 }) }

    public func advance(by seconds: Double) { offset.withLock { $0 += seconds } }
}
