import Foundation
import GRDB
import Synchronization

/// Another process holding the legacy file's write lock. PrismQ's real
/// BaseWorker keeps it from its first failed heartbeat until it exits (spec
/// legacy-queue section 10.1), for minutes. A daemon waits it out; a one-shot
/// command gives up after one busy timeout with `LegacyQueueError.locked`.
///
/// The store reports each wait here; what to say about it is the caller's
/// (the engine logs one warning when a wait begins and one info when it ends).
public final class LockWatch: Sendable {
    public enum Event: Sendable, Equatable {
        case began
        /// Still waiting, after another busy timeout.
        case waiting(seconds: Double)
        case ended(seconds: Double)
    }

    private struct State {
        var waitForever = false
        var observer: (@Sendable (Event) -> Void)?
        var since: Double?
    }
    private let state = Mutex(State())

    public init() {}

    /// `waitForever`: writes retry through any number of busy timeouts
    /// (until the task is cancelled) instead of failing.
    public func configure(waitForever: Bool, observer: (@Sendable (Event) -> Void)?) {
        state.withLock {
            $0.waitForever = waitForever
            $0.observer = observer
        }
    }

    /// Seconds the current wait has lasted, 0 when there is none.
    public var currentWait: Double {
        state.withLock { s in s.since.map { Date().timeIntervalSince1970 - $0 } ?? 0 }
    }

    /// A write hit the busy timeout. True when it should try again.
    func busy(startedAt: Double) -> Bool {
        let (retry, observer, event) = state.withLock { s -> (Bool, (@Sendable (Event) -> Void)?, Event) in
            if let since = s.since {
                return (s.waitForever, s.observer, .waiting(seconds: Date().timeIntervalSince1970 - since))
            }
            s.since = startedAt
            return (s.waitForever, s.observer, .began)
        }
        observer?(event)
        if !retry { ended() }
        return retry
    }

    /// A write got the lock (or gave up): any wait is over.
    func ended() {
        let (observer, seconds) = state.withLock { s -> ((@Sendable (Event) -> Void)?, Double?) in
            defer { s.since = nil }
            return (s.observer, s.since.map { Date().timeIntervalSince1970 - $0 })
        }
        if let seconds { observer?(.ended(seconds: seconds)) }
    }

    static func isBusy(_ error: any Error) -> Bool {
        guard let e = error as? DatabaseError else { return false }
        return e.resultCode == .SQLITE_BUSY || e.resultCode == .SQLITE_LOCKED
    }
}
