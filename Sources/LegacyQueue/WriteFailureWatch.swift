import Foundation
import GRDB
import Synchronization

/// Writes to the legacy file that keep failing for a reason no retry inside
/// one transaction can fix: a full disk (`SQLITE_FULL`), an I/O error, a
/// read-only file. Nothing is lost (every write is a rolled-back
/// transaction that runs again), but each loop used to log an error twice a
/// second while it lasted. Reported like the write-lock wait (`LockWatch`):
/// the engine logs one warning when failures begin and one info when a write
/// succeeds again, and shows the current episode as a gauge and in `/health`.
public final class WriteFailureWatch: Sendable {
    public enum Event: Sendable, Equatable {
        case began(reason: String)
        case ended(seconds: Double)
    }

    private struct State {
        var observer: (@Sendable (Event) -> Void)?
        var since: Double?
        var reason: String?
    }
    private let state = Mutex(State())

    public init() {}

    public func configure(observer: (@Sendable (Event) -> Void)?) {
        state.withLock { $0.observer = observer }
    }

    /// The current episode: how long and why, nil when writes succeed.
    public var current: (seconds: Double, reason: String)? {
        state.withLock { s in
            guard let since = s.since else { return nil }
            return (Date().timeIntervalSince1970 - since, s.reason ?? "")
        }
    }

    /// True for the failures this watch reports (and callers log quietly).
    public static func isPersistent(_ error: any Error) -> Bool {
        guard let e = error as? DatabaseError else { return false }
        return [.SQLITE_FULL, .SQLITE_IOERR, .SQLITE_READONLY, .SQLITE_CANTOPEN].contains(e.resultCode)
    }

    func failed(_ error: any Error) {
        guard Self.isPersistent(error) else { return }
        let reason = (error as? DatabaseError).map { "\($0.resultCode): \($0.message ?? "")" } ?? "\(error)"
        let observer = state.withLock { s -> (@Sendable (Event) -> Void)? in
            guard s.since == nil else { return nil }
            s.since = Date().timeIntervalSince1970
            s.reason = reason
            return s.observer
        }
        observer?(.began(reason: reason))
    }

    func succeeded() {
        let (observer, seconds) = state.withLock { s -> ((@Sendable (Event) -> Void)?, Double?) in
            guard let since = s.since else { return (nil, nil) }
            s.since = nil
            s.reason = nil
            return (s.observer, Date().timeIntervalSince1970 - since)
        }
        if let seconds { observer?(.ended(seconds: seconds)) }
    }

    /// For tests of the watch alone (the store calls the internal ones).
    public func failedForTesting(_ error: any Error) { failed(error) }
    public func succeededForTesting() { succeeded() }
}
