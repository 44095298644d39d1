import Foundation
import LegacyQueue
import Logging
import Synchronization

/// A wake-up for one consuming loop, built on `AsyncStream`: any number of
/// producers signal, signals coalesce (`bufferingNewest(1)`), and the loop
/// merges the stream with its timer (swift-async-algorithms' `merge`).
final class Wakeup: Sendable {
    let stream: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation

    init() {
        (stream, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    func signal() { continuation.yield() }
    func finish() { continuation.finish() }
}

/// The wake-ups of one `run`: streams are single-use, so each run has its own.
final class RunContext: Sendable {
    /// Capture (new intents), a stop, or a recovered API: look for due intents.
    let sendWake = Wakeup()
    /// A send that found a finished task: mirror it now.
    let mirrorWake = Wakeup()
    /// Capture recorded shadow copies to create.
    let shadowWake = Wakeup()
    let stopEvents: AsyncStream<Void>
    private let stopContinuation: AsyncStream<Void>.Continuation
    let watcher: DataVersionWatcher

    init(store: LegacyQueueStore, idleInterval: Double, queueLabel: String, logger: Logger, notifications: Bool) {
        (stopEvents, stopContinuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        watcher = DataVersionWatcher(
            store: store, idleInterval: idleInterval, queueLabel: queueLabel, logger: logger,
            notifications: notifications)
    }

    func stopRequested() {
        stopContinuation.yield()
        sendWake.signal()
    }
}

/// Wakes capture whenever any connection committed to the legacy file, on a
/// thread of its own (the checks are blocking SQLite calls; on the
/// cooperative pool they would hold a thread).
///
/// Where the kernel tells (inotify, `LegacyFileEvents`) the thread sleeps
/// until the WAL, journal or file is written and then asks `PRAGMA
/// data_version`, the truth of whether anything committed: no busy polling
/// while rows flow, and a commit is seen within the notification's latency.
/// At `[bridge] poll_interval_ms` it looks anyway, for what no notification
/// reports. Where there are no notifications, or three idle looks in a row
/// found commits no notification announced (a network file system), it polls
/// as before: every millisecond for two seconds after rows flowed, at the
/// idle interval otherwise. `stop()` wakes the thread and waits for it, so
/// the store is never closed under a check.
///
/// It also watches what a commit cannot show by itself: `PRAGMA
/// schema_version` after every commit (a recreated `task_queue` drops the
/// insert trigger, so reconcile must run now, not at its next tick), and the
/// file's identity at its path at every idle look and whenever a file is
/// created or moved at its name (a restore by `mv` leaves every connection
/// on the old, unlinked file).
final class DataVersionWatcher: @unchecked Sendable {
    let changes: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation
    /// The schema changed (DDL by any connection).
    let schemaChanges = Wakeup()
    /// Another file is at the path.
    let replacements = Wakeup()
    private let store: LegacyQueueStore
    private let idleInterval: Double
    private let queueLabel: String
    private let logger: Logger
    /// Nil where the platform gives no notifications, or once they were found missing.
    private var events: LegacyFileEvents?
    /// Guards `running` and `exited`; the polling thread waits on it between polls.
    private let condition = NSCondition()
    private var running = false
    private var exited = true
    /// When rows last flowed (epoch seconds, as bits of a Double).
    private let activityAt = Atomic<UInt64>(0)
    /// The longest capture goes without a wake-up (a mode change with no
    /// commit after it): the watcher's own idle looks yield one, so capture
    /// waits on one stream instead of merging a timer into it.
    var refreshInterval: Double { idleInterval * 20 }
    static let hotInterval = 0.001
    static let hotWindow = 2.0
    /// Idle looks in a row that found an unannounced commit before notifications are given up.
    static let missesBeforePolling = 3
    /// The idle look while notifications drive the wake-ups.
    static let notifiedIdleInterval = 1.0
    /// Looks after a notification that found no commit yet (microseconds, about 8 ms in all).
    static let settlePauses: [UInt32] = [100, 250, 500, 1_000, 2_000, 4_000]

    init(store: LegacyQueueStore, idleInterval: Double, queueLabel: String, logger: Logger, notifications: Bool) {
        self.store = store
        self.idleInterval = idleInterval
        self.queueLabel = queueLabel
        self.logger = logger
        events = notifications ? LegacyFileEvents(path: store.path) : nil
        (changes, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// True while kernel notifications drive the wake-ups (for tests and status).
    var notified: Bool {
        condition.lock()
        defer { condition.unlock() }
        return events != nil
    }

    /// A capture pass now, whatever the file shows.
    func poke() { continuation.yield() }

    /// Set when a commit moved the audit trail (a mode change) or the schema.
    private let modesMoved = Atomic<Bool>(true)

    /// True once after the modes may have changed.
    func takeModesMoved() -> Bool { modesMoved.exchange(false, ordering: .relaxed) }

    func noteActivity() {
        activityAt.store(Date().timeIntervalSince1970.bitPattern, ordering: .relaxed)
    }

    func start() {
        condition.lock()
        defer { condition.unlock() }
        guard !running else { return }
        running = true
        exited = false
        continuation.yield()  // a first look at whatever is pending
        if events == nil {
            logger.info(
                "no file notifications for the legacy file; polling PRAGMA data_version",
                metadata: ["path": "\(store.path)"])
        }
        let thread = Thread { [self] in self.run() }
        thread.name = "taskbridge-data-version"
        thread.start()
    }

    func stop() {
        condition.lock()
        running = false
        condition.broadcast()
        events?.interrupt()
        while !exited { condition.wait() }
        condition.unlock()
        continuation.finish()
        schemaChanges.finish()
        replacements.finish()
    }

    private func run() {
        var last: Int64 = -1
        var lastSchema: Int64 = -1
        var statAt = 0.0
        var yieldedAt = Date().timeIntervalSince1970
        var lastMarks: LegacyQueueStore.CaptureMarks?
        var misses = 0
        var cause = "start"
        condition.lock()
        while running {
            let events = self.events
            condition.unlock()
            BridgeMetrics.legacyWakeups.increment(queueLabel, cause)
            var committed = false
            var version = try? store.dataVersion()
            if cause == "notification", version == last {
                // The notification is the WAL write; the commit becomes
                // visible a moment later in the WAL index, shared memory that
                // raises no notification. A few short looks catch it, instead
                // of waiting for the next row or the idle look.
                for pause in Self.settlePauses where version == last {
                    usleep(pause)
                    version = try? store.dataVersion()
                }
            }
            if let v = version, v != last {
                committed = last >= 0
                last = v
                var schemaMoved = false
                if let sv = try? store.schemaVersion(), sv != lastSchema {
                    if lastSchema >= 0 { schemaChanges.signal() }
                    lastSchema = sv
                    schemaMoved = true
                }
                // Most commits after a row are the bridge's own (its capture
                // and send writes): they reach neither the change log nor
                // the audit trail, and a capture pass for each was a third
                // of the thread wake-ups per row. Capture wakes when either
                // moved, the schema did, or the signature cannot be read.
                let marks = store.captureMarks()
                if schemaMoved || marks == nil || marks?.audit != lastMarks?.audit {
                    // A mode change: capture reads the modes at once, not at its next refresh.
                    modesMoved.store(true, ordering: .relaxed)
                }
                if schemaMoved || marks == nil || marks != lastMarks {
                    continuation.yield()
                    yieldedAt = Date().timeIntervalSince1970
                }
                lastMarks = marks
            }
            let now = Date().timeIntervalSince1970
            if now - yieldedAt >= refreshInterval {
                continuation.yield()
                yieldedAt = now
            }
            if now - statAt >= idleInterval {
                statAt = now
                if store.replacedFile() != nil {
                    replacements.signal()
                    last = -1
                    lastSchema = -1
                }
            }
            guard let events else {
                let hot = now - Double(bitPattern: activityAt.load(ordering: .relaxed)) < Self.hotWindow
                condition.lock()
                let interval = hot ? Self.hotInterval : idleInterval
                if running { _ = condition.wait(until: Date(timeIntervalSinceNow: interval)) }
                cause = "timer"
                continue
            }
            if cause == "timer" {
                misses = committed ? misses + 1 : 0
                if misses >= Self.missesBeforePolling {
                    logger.warning(
                        """
                        commits to the legacy file arrive without file notifications (a network file system?); \
                        polling PRAGMA data_version instead
                        """,
                        metadata: ["path": "\(store.path)", "looks": "\(misses)"])
                    condition.lock()
                    self.events = nil
                    continue
                }
            }
            // Every write announces itself, so the idle look only checks
            // that notifications still arrive: at most once a second.
            switch events.wait(timeout: max(idleInterval, Self.notifiedIdleInterval)) {
            case .changed(let renamed):
                cause = "notification"
                misses = 0
                if renamed { statAt = 0 }
            case .timedOut: cause = "timer"
            case .interrupted: cause = "stop"
            }
            condition.lock()
        }
        exited = true
        condition.broadcast()
        condition.unlock()
    }
}

/// Exponential back-off with jitter for one row's next attempt.
func backoff(attempts: Int64, base: Double = 0.5, cap: Double = 60) -> Double {
    SendPolicy.backoffDelay(attempts: attempts, base: base, cap: cap) * Double.random(in: 0.8...1.2)
}

extension Double {
    func rounded(toPlaces n: Int) -> Double {
        let f = Foundation.pow(10, Double(n))
        return (self * f).rounded() / f
    }
}
