import BridgeConfig
import Foundation

/// Mutable state the engine's loops share. Everything durable lives in the
/// ledger; this is only what makes the loops polite (breakers, pauses) and
/// what `/health` reports.
actor EngineState {
    var modes: [String: BridgeMode] = [:]
    var registered: Set<String> = []
    var backlogPending = true
    /// Bumped by every request for a sweep: a sweep that started before a
    /// request must not clear it (a recreated table asks again while the
    /// sweep of the old one is finishing).
    var backlogRequests = 0
    /// Sends of every type wait until then (429 Retry-After, 401).
    var globalPauseUntil: Double = 0
    var unauthorized = false
    var lastAPIError: String?
    var lastAPIErrorAt: Double = 0
    var objectsHealthy = true
    var lastLoopAt: Double = Date().timeIntervalSince1970
    var breakers: [String: CircuitBreaker] = [:]

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
        if !newlyForward.isEmpty || !newlyDry.isEmpty || !raised.isEmpty {
            backlogPending = true
            backlogRequests += 1
        }
        return newlyForward + raised.keys.filter { !newlyForward.contains($0) }.sorted()
    }
    var percents: [String: Int] = [:]

    func markBacklog(_ pending: Bool) {
        if pending { backlogRequests += 1 }
        backlogPending = pending
    }

    /// Clears the flag only if nobody asked for a sweep since `request`.
    func backlogSwept(since request: Int) {
        if backlogRequests == request { backlogPending = false }
    }
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

    /// A send of `type` that started at `startedAt` failed (transiently).
    func breakerFailure(_ type: String, startedAt: Double, now: Double) -> CircuitBreaker.Event? {
        var b = breakers[type] ?? CircuitBreaker()
        defer { breakers[type] = b }
        return b.failure(startedAt: startedAt, now: now)
    }

    /// When a create of each TaskManager type last succeeded: the
    /// persistent-error policy quarantines a row only while others get through.
    var sendSuccessAt: [String: Double] = [:]
    func recordSendSuccess(_ type: String, at t: Double) { sendSuccessAt[type] = t }
    func lastSendSuccess(_ type: String) -> Double? { sendSuccessAt[type] }

    func breakerSuccess(_ type: String, now: Double) -> CircuitBreaker.Event? {
        guard var b = breakers[type] else { return nil }
        defer { breakers[type] = b }
        return b.success(now: now)
    }

    /// What the sender needs before it reads due intents: nil while every
    /// send is paused; else the types whose breaker holds sends back, the
    /// types that may send one probe now, the registered types, the modes.
    func sendGate(now: Double) -> (blocked: Set<String>, probes: Set<String>, Set<String>, [String: BridgeMode])? {
        if now < globalPauseUntil { return nil }
        var blocked = Set<String>(), probes = Set<String>()
        for (type, var b) in breakers where b.isOpen {
            if case .open = b.state, b.allows(now: now) {
                probes.insert(type)
                breakers[type] = b
            } else {
                blocked.insert(type)
            }
        }
        return (blocked, probes, registered, modes)
    }

    /// A probe admitted by `sendGate` that found no row to carry: the next
    /// batch may probe again.
    func probeUnused(_ type: String, now: Double) {
        guard var b = breakers[type], case .halfOpen(let openedAt, _, let interval) = b.state else { return }
        b = CircuitBreaker(reopened: openedAt, interval: interval, probeAt: now)
        breakers[type] = b
    }

    func openBreakers() -> Set<String> {
        Set(breakers.filter { $0.value.isOpen }.map(\.key))
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
        /// Per TaskManager type: consecutive failures and, while open, when the next probe may go.
        var breakers: [String: (failures: Int, open: Bool, probeIn: Double?)]
    }

    func snapshot() -> Snapshot {
        let now = Date().timeIntervalSince1970
        return Snapshot(
            unauthorized: unauthorized, lastAPIError: lastAPIError, lastAPIErrorAt: lastAPIErrorAt,
            objectsHealthy: objectsHealthy, lastLoopAt: lastLoopAt,
            openBreakers: breakers.filter { $0.value.isOpen }.map(\.key).sorted(),
            pausedUntil: globalPauseUntil, modes: modes, failingSince: failingSince,
            breakers: breakers.mapValues { ($0.failures, $0.isOpen, $0.closesIn(now: now)) })
    }
}
