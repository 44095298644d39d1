import Foundation

/// One TaskManager type's circuit breaker, as a pure state machine (tested
/// without sockets in `CircuitBreakerTests`). A breaker protects a failing
/// server; it must not keep a healthy one idle (issue 15: six "circuit
/// opened" lines within 60 ms, and a minute of silence after the outage):
///
/// ```
///  closed ──5 failures in a row──► open ──probe interval passed──► half-open
///    ▲                              ▲                                 │ one probe send
///    │                              └──────── probe failed ───────────┤ (interval doubles, at most `maxProbeInterval`)
///    └──────────────────── any success ───────────────────────────────┘
/// ```
///
/// - One outage is one open: failures of sends that started before the
///   breaker opened are the same outage and change nothing.
/// - While open, sends wait; at most every `maxProbeInterval` one probe goes,
///   so traffic resumes within that long of the server answering again.
public struct CircuitBreaker: Sendable, Equatable {
    public enum State: Sendable, Equatable {
        case closed(failures: Int)
        /// Since `openedAt`; the next probe is allowed at `probeAt`.
        case open(openedAt: Double, probeAt: Double, interval: Double)
        /// A probe is in the air (sent at `sentAt`).
        case halfOpen(openedAt: Double, sentAt: Double, interval: Double)
    }

    public static let threshold = 5
    public static let firstProbeInterval = 0.5
    /// Sends resume within this long of the server answering again.
    public static let maxProbeInterval = 4.0

    public private(set) var state: State = .closed(failures: 0)

    public init() {}

    /// Open again, its probe due at `probeAt` (a probe that went unused).
    init(reopened openedAt: Double, interval: Double, probeAt: Double) {
        state = .open(openedAt: openedAt, probeAt: probeAt, interval: interval)
    }

    /// What happened, for the one log line each transition gets.
    public enum Event: Sendable, Equatable {
        case opened
        /// Closed again; the outage lasted this long.
        case closed(outage: Double)
    }

    /// May a send of this type start now? In half-open, only the probe.
    public mutating func allows(now: Double) -> Bool {
        switch state {
        case .closed: return true
        case .open(let openedAt, let probeAt, let interval):
            guard now >= probeAt else { return false }
            state = .halfOpen(openedAt: openedAt, sentAt: now, interval: interval)
            return true
        case .halfOpen(let openedAt, let sentAt, let interval):
            // A probe that never reports (cancelled) must not hold the type forever.
            if now - sentAt > 2 * Self.maxProbeInterval + 30 {
                state = .halfOpen(openedAt: openedAt, sentAt: now, interval: interval)
                return true
            }
            return false
        }
    }

    public var isOpen: Bool {
        if case .closed = state { return false }
        return true
    }

    /// A send that started at `startedAt` failed with a transient error.
    public mutating func failure(startedAt: Double, now: Double) -> Event? {
        switch state {
        case .closed(let failures):
            if failures + 1 >= Self.threshold {
                state = .open(openedAt: now, probeAt: now + Self.firstProbeInterval, interval: Self.firstProbeInterval)
                return .opened
            }
            state = .closed(failures: failures + 1)
            return nil
        case .open:
            return nil  // in flight before the open: the same outage
        case .halfOpen(let openedAt, let sentAt, let interval):
            guard startedAt >= sentAt else { return nil }  // an older send, not the probe
            let next = min(Self.maxProbeInterval, interval * 2)
            state = .open(openedAt: openedAt, probeAt: now + next * Double.random(in: 0.9...1.0), interval: next)
            return nil
        }
    }

    /// Any success closes the breaker.
    public mutating func success(now: Double) -> Event? {
        switch state {
        case .closed(let failures):
            if failures > 0 { state = .closed(failures: 0) }
            return nil
        case .open(let openedAt, _, _), .halfOpen(let openedAt, _, _):
            state = .closed(failures: 0)
            return .closed(outage: now - openedAt)
        }
    }

    /// For `/health` and the page.
    public var failures: Int {
        if case .closed(let f) = state { return f }
        return Self.threshold
    }

    public func closesIn(now: Double) -> Double? {
        if case .open(_, let probeAt, _) = state { return max(0, probeAt - now) }
        return nil
    }
}
