import BridgeConfig
import Foundation

/// Mutable state the engine's loops share. Everything durable lives in the
/// ledger; this is only what makes the loops polite (breakers, pauses) and
/// what `/health` reports.
actor EngineState {
    var modes: [String: BridgeMode] = [:]
    var registered: Set<String> = []
    var backlogPending = true
    /// Sends of every type wait until then (429 Retry-After, 401).
    var globalPauseUntil: Double = 0
    var unauthorized = false
    var lastAPIError: String?
    var lastAPIErrorAt: Double = 0
    var objectsHealthy = true
    var lastLoopAt: Double = Date().timeIntervalSince1970
    var breakers: [String: Breaker] = [:]

    struct Breaker {
        var failures = 0
        var openUntil: Double = 0
        var opened = 0
    }

    /// Returns the types that now claim rows. A type that starts claiming
    /// rows or enters dry-run has a backlog to take or to judge: queued rows
    /// that no insert trigger will announce again.
    /// A canary raised (a larger share) has a backlog too: rows that were
    /// outside the old share and are inside the new one.
    func setModes(_ m: [String: BridgeMode], percents p: [String: Int] = [:]) -> [String] {
        let newlyForward = m.filter { $0.value.claimsRows && !(modes[$0.key]?.claimsRows ?? false) }.map(\.key)
        let newlyDry = m.filter { $0.value == .dryRun && modes[$0.key] != .dryRun }
        let raised = p.filter { m[$0.key]?.claimsRows == true && $0.value > (percents[$0.key] ?? 100) }
        modes = m
        percents = p
        if !newlyForward.isEmpty || !newlyDry.isEmpty || !raised.isEmpty { backlogPending = true }
        return newlyForward + raised.keys.filter { !newlyForward.contains($0) }.sorted()
    }
    var percents: [String: Int] = [:]

    func markBacklog(_ pending: Bool) { backlogPending = pending }
    func markRegistered(_ name: String, id: Int64? = nil) {
        registered.insert(name)
        if let id { typeIDs[name] = id }
    }
    /// TaskManager type ids by name, from registration (reverse claims need them).
    var typeIDs: [String: Int64] = [:]
    func typeID(_ name: String) -> Int64? { typeIDs[name] }
    func isRegistered(_ name: String) -> Bool { registered.contains(name) }
    func tick() { lastLoopAt = Date().timeIntervalSince1970 }
    func setObjectsHealthy(_ ok: Bool) { objectsHealthy = ok }

    func pause(until t: Double) { globalPauseUntil = max(globalPauseUntil, t) }
    func pausedUntil() -> Double { globalPauseUntil }

    var failingSince: Double?

    func recordAPIError(_ text: String, unauthorized u: Bool = false) {
        if failingSince == nil { failingSince = Date().timeIntervalSince1970 }
        lastAPIError = text
        lastAPIErrorAt = Date().timeIntervalSince1970
        if u { unauthorized = true }
    }

    /// True when this success ends a run of failures.
    @discardableResult
    func recordAPISuccess() -> Bool {
        unauthorized = false
        defer { failingSince = nil }
        return failingSince != nil
    }

    /// Per-type circuit breaker: five transient failures in a row open it
    /// for an exponentially growing, jittered period; a success closes it.
    func breakerFailure(_ type: String, now: Double) -> Bool {
        var b = breakers[type] ?? Breaker()
        b.failures += 1
        var opened = false
        if b.failures >= 5 {
            b.opened += 1
            let base = min(60, pow(2, Double(min(b.opened, 6))))
            b.openUntil = now + base * Double.random(in: 0.8...1.2)
            b.failures = 0
            opened = true
        }
        breakers[type] = b
        return opened
    }

    /// When a create of each TaskManager type last succeeded: the
    /// persistent-error policy quarantines a row only while others get through.
    var sendSuccessAt: [String: Double] = [:]
    func recordSendSuccess(_ type: String, at t: Double) { sendSuccessAt[type] = t }
    func lastSendSuccess(_ type: String) -> Double? { sendSuccessAt[type] }

    func breakerSuccess(_ type: String) {
        if breakers[type] != nil { breakers[type] = Breaker() }
    }

    /// What the sender needs before it reads due intents: nil while every
    /// send is paused; else the open breakers, the registered types, the modes.
    func sendGate(now: Double) -> (Set<String>, Set<String>, [String: BridgeMode])? {
        if now < globalPauseUntil { return nil }
        return (openBreakers(now: now), registered, modes)
    }

    func openBreakers(now: Double) -> Set<String> {
        Set(breakers.filter { $0.value.openUntil > now }.map(\.key))
    }

    struct Snapshot: Sendable {
        var unauthorized: Bool
        var lastAPIError: String?
        var lastAPIErrorAt: Double
        var objectsHealthy: Bool
        var lastLoopAt: Double
        var openBreakers: [String]
        var pausedUntil: Double
        var modes: [String: BridgeMode]
        var failingSince: Double?
        /// Per TaskManager type: consecutive failures and when an open breaker closes.
        var breakers: [String: (failures: Int, openUntil: Double)]
    }

    func snapshot() -> Snapshot {
        let now = Date().timeIntervalSince1970
        return Snapshot(
            unauthorized: unauthorized, lastAPIError: lastAPIError, lastAPIErrorAt: lastAPIErrorAt,
            objectsHealthy: objectsHealthy, lastLoopAt: lastLoopAt,
            openBreakers: breakers.filter { $0.value.openUntil > now }.map(\.key).sorted(),
            pausedUntil: globalPauseUntil, modes: modes, failingSince: failingSince,
            breakers: breakers.mapValues { ($0.failures, $0.openUntil) })
    }
}
