import LegacyQueue
import TaskManagerClient

/// What a failed create means for its row: retry later, pause every send,
/// re-register the type, or quarantine. Pure: `SendPolicyTests` covers every
/// branch without a socket; the engine applies the decision.
public enum SendPolicy {
    public struct Settings: Sendable, Equatable {
        /// `[bridge] persistent_error_attempts` and `persistent_error_seconds`.
        public var persistentAttempts: Int64
        public var persistentSeconds: Double

        public init(persistentAttempts: Int64 = 10, persistentSeconds: Double = 600) {
            self.persistentAttempts = persistentAttempts
            self.persistentSeconds = persistentSeconds
        }
    }

    /// What the engine knows when a send fails.
    public struct Context: Sendable, Equatable {
        /// Failed attempts recorded before this one.
        public var attempts: Int64
        public var lastError: String?
        public var errorStreak: Int64
        public var streakStartedAt: Double?
        public var now: Double
        /// The last time a create of the same TaskManager type succeeded.
        public var typeLastSuccessAt: Double?
        /// The type was already registered again during this send.
        public var reRegistered: Bool

        public init(
            attempts: Int64, lastError: String?, errorStreak: Int64, streakStartedAt: Double?, now: Double,
            typeLastSuccessAt: Double?, reRegistered: Bool
        ) {
            self.attempts = attempts
            self.lastError = lastError
            self.errorStreak = errorStreak
            self.streakStartedAt = streakStartedAt
            self.now = now
            self.typeLastSuccessAt = typeLastSuccessAt
            self.reRegistered = reRegistered
        }

        public init(entry: LedgerEntry, now: Double, typeLastSuccessAt: Double?, reRegistered: Bool) {
            self.init(
                attempts: entry.attempts, lastError: entry.lastError, errorStreak: entry.errorStreak,
                streakStartedAt: entry.streakStartedAt, now: now, typeLastSuccessAt: typeLastSuccessAt,
                reRegistered: reRegistered)
        }
    }

    public enum Decision: Sendable, Equatable {
        /// 404 on the first try: the type vanished (a reset server); register
        /// it again and send once more before calling the row bad.
        case reRegister
        case quarantine(code: String, detail: String)
        /// `delay` before this row's next attempt (before jitter); `pauseAll`
        /// stops every send that long (401, 429); `breaker` counts toward the
        /// type's circuit breaker. The streak is recorded with the row.
        case retry(delay: Double, pauseAll: Double?, breaker: Bool, errorStreak: Int64, streakStartedAt: Double?)
    }

    public static func decide(_ error: TaskManagerError, _ c: Context, _ s: Settings) -> Decision {
        switch error {
        case .notFound where !c.reRegistered:
            return .reRegister
        case .notFound(let m):
            return .quarantine(code: "api_unknown_type", detail: m)
        case .validation(let m, let d):
            return .quarantine(code: "api_validation", detail: ([m] + d).joined(separator: "; "))
        case .payloadTooLarge(let m):
            return .quarantine(code: "api_too_large", detail: m)
        case .unauthorized:
            return .retry(delay: 30, pauseAll: 30, breaker: false, errorStreak: 0, streakStartedAt: nil)
        case .rateLimited(let after, _):
            let wait = after ?? backoffDelay(attempts: c.attempts)
            return .retry(delay: wait, pauseAll: wait, breaker: false, errorStreak: 0, streakStartedAt: nil)
        case .server(let status, _) where status >= 500:
            return persistent(error, c, s)
        default:
            return .retry(
                delay: backoffDelay(attempts: c.attempts, cap: 15), pauseAll: nil, breaker: true,
                errorStreak: 0, streakStartedAt: nil)
        }
    }

    /// A TaskManager error envelope with a 5xx is usually an outage, but the
    /// real server also answers 500 for what it will never accept (params
    /// above its TEXT column, spec section 17.1). The same error for the same
    /// row, again and again, while other rows of the type get through, is a
    /// refusal: quarantined once both thresholds pass. A type whose every send
    /// fails never has a success after the streak began, so it only waits.
    static func persistent(_ error: TaskManagerError, _ c: Context, _ s: Settings) -> Decision {
        let text = error.description
        let continues = c.errorStreak > 0 && c.lastError == text
        let streak = continues ? c.errorStreak + 1 : 1
        let started = continues ? (c.streakStartedAt ?? c.now) : c.now
        if streak >= s.persistentAttempts, c.now - started >= s.persistentSeconds,
            let ok = c.typeLastSuccessAt, ok > started
        {
            return .quarantine(
                code: "api_persistent_error",
                detail:
                    "\(streak) sends failed with the same server error over \(Int(c.now - started)) s while other rows "
                    + "of the type were accepted: \(text)")
        }
        return .retry(
            delay: backoffDelay(attempts: c.attempts, cap: 15), pauseAll: nil, breaker: true,
            errorStreak: streak, streakStartedAt: started)
    }

    /// An answer that will not change on a retry (400, 413): for a copy that
    /// no row depends on (a shadow copy), the end of it, not a quarantine.
    public static func isPermanentRefusal(_ error: TaskManagerError) -> Bool {
        switch error {
        case .validation, .payloadTooLarge: return true
        default: return false
        }
    }

    /// Exponential backoff before jitter.
    public static func backoffDelay(attempts: Int64, base: Double = 0.5, cap: Double = 60) -> Double {
        min(cap, base * Double(1 << min(max(attempts, 0), 16)))
    }
}
