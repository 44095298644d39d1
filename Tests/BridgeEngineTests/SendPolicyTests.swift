import BridgeEngine
import TaskManagerClient
import Testing

/// The send-error policy without a socket: every branch of `SendPolicy.decide`.
@Suite struct SendPolicyTests {
    let settings = SendPolicy.Settings(persistentAttempts: 3, persistentSeconds: 60)
    let tooLong = TaskManagerError.server(status: 500, message: "Data too long for column 'params_json'")

    func context(
        streak: Int64 = 0, started: Double? = nil, lastError: String? = nil, now: Double = 1000,
        success: Double? = nil, reRegistered: Bool = false
    ) -> SendPolicy.Context {
        .init(
            attempts: streak, lastError: lastError, errorStreak: streak, streakStartedAt: started, now: now,
            typeLastSuccessAt: success, reRegistered: reRegistered)
    }

    @Test func refusalsQuarantineWithTheirReason() {
        #expect(
            SendPolicy.decide(.validation("Parameter validation failed", details: ["x"]), context(), settings)
                == .quarantine(code: "api_validation", detail: "Parameter validation failed; x"))
        #expect(
            SendPolicy.decide(.payloadTooLarge("Request Too Large"), context(), settings)
                == .quarantine(code: "api_too_large", detail: "Request Too Large"))
        #expect(SendPolicy.decide(.notFound("Task type not found"), context(), settings) == .reRegister)
        #expect(
            SendPolicy.decide(.notFound("Task type not found"), context(reRegistered: true), settings)
                == .quarantine(code: "api_unknown_type", detail: "Task type not found"))
    }

    @Test func keyAndRateLimitPauseEverySend() {
        #expect(
            SendPolicy.decide(.unauthorized("Invalid key"), context(), settings)
                == .retry(delay: 30, pauseAll: 30, breaker: false, errorStreak: 0, streakStartedAt: nil))
        #expect(
            SendPolicy.decide(.rateLimited(retryAfter: 7, message: "slow down"), context(), settings)
                == .retry(delay: 7, pauseAll: 7, breaker: false, errorStreak: 0, streakStartedAt: nil))
    }

    /// HTML pages, garbage and timeouts are transient and start no streak.
    @Test func transientErrorsRetryWithBackoff() {
        for e in [
            TaskManagerError.undecodable(status: 400, snippet: "<html>"), .transport("reset"),
            .server(status: 408, message: ""),
        ] {
            guard case .retry(_, nil, true, 0, nil) = SendPolicy.decide(e, context(), settings) else {
                Issue.record("\(e) should retry with the breaker and no streak")
                continue
            }
        }
    }

    @Test func aServerErrorStartsAndExtendsAStreak() {
        guard case .retry(_, nil, true, 1, 1000) = SendPolicy.decide(tooLong, context(), settings) else {
            Issue.record("first failure starts a streak at now")
            return
        }
        let same = context(streak: 1, started: 1000, lastError: tooLong.description, now: 1010)
        guard case .retry(_, _, _, 2, 1000) = SendPolicy.decide(tooLong, same, settings) else {
            Issue.record("the same error extends the streak from its start")
            return
        }
        // Another error starts a new streak.
        let other = context(streak: 2, started: 1000, lastError: "server error (503): down", now: 1020)
        guard case .retry(_, _, _, 1, 1020) = SendPolicy.decide(tooLong, other, settings) else {
            Issue.record("a different error restarts the streak")
            return
        }
    }

    @Test func aStreakPastBothThresholdsWhileOthersSucceedQuarantines() {
        // Third identical failure, 70 s after the first, a success of the type at 1050.
        let c = context(streak: 2, started: 1000, lastError: tooLong.description, now: 1070, success: 1050)
        guard case .quarantine("api_persistent_error", let detail) = SendPolicy.decide(tooLong, c, settings) else {
            Issue.record("expected api_persistent_error")
            return
        }
        #expect(detail.contains("3 sends failed") && detail.contains("Data too long"))
    }

    @Test func aStreakWaitsWhenAThresholdIsNotMetOrNothingElseSucceeds() {
        // Too few attempts.
        let early = context(streak: 1, started: 1000, lastError: tooLong.description, now: 1070, success: 1050)
        #expect(SendPolicy.decide(tooLong, early, settings) != .quarantine(code: "api_persistent_error", detail: ""))
        if case .quarantine = SendPolicy.decide(tooLong, early, settings) {
            Issue.record("quarantined after 2 attempts")
        }
        // Too soon.
        let soon = context(streak: 5, started: 1000, lastError: tooLong.description, now: 1030, success: 1020)
        if case .quarantine = SendPolicy.decide(tooLong, soon, settings) { Issue.record("quarantined before 60 s") }
        // The API fails for everyone: the last success is older than the streak.
        let outage = context(streak: 50, started: 1000, lastError: tooLong.description, now: 5000, success: 900)
        if case .quarantine = SendPolicy.decide(tooLong, outage, settings) {
            Issue.record("quarantined during an outage")
        }
        let never = context(streak: 50, started: 1000, lastError: tooLong.description, now: 5000, success: nil)
        if case .quarantine = SendPolicy.decide(tooLong, never, settings) {
            Issue.record("quarantined with no success at all")
        }
    }

    @Test func backoffGrowsAndIsCapped() {
        #expect(SendPolicy.backoffDelay(attempts: 0) == 0.5)
        #expect(SendPolicy.backoffDelay(attempts: 3) == 4)
        #expect(SendPolicy.backoffDelay(attempts: 40, cap: 15) == 15)
    }
}

/// The metric catalogue: one declaration per name, Prometheus conventions.
@Suite struct MetricCatalogueTests {
    @Test func namesAreUniqueAndConventional() {
        let names = BridgeMetrics.counters.map(\.name) + BridgeMetrics.gauges.map(\.name)
        #expect(Set(names).count == names.count)
        for c in BridgeMetrics.counters {
            #expect(c.name.hasPrefix("taskbridge_") && c.name.hasSuffix("_total"), "\(c.name)")
        }
        for g in BridgeMetrics.gauges {
            #expect(g.name.hasPrefix("taskbridge_") && !g.name.hasSuffix("_total"), "\(g.name)")
        }
        for c in BridgeMetrics.counters { #expect(!c.help.isEmpty) }
    }
}
