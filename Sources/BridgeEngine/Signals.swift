import Foundation
import LegacyQueue
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
    let stopEvents: AsyncStream<Void>
    private let stopContinuation: AsyncStream<Void>.Continuation
    let watcher: DataVersionWatcher

    init(store: LegacyQueueStore, idleInterval: Double) {
        (stopEvents, stopContinuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        watcher = DataVersionWatcher(store: store, idleInterval: idleInterval)
    }

    func stopRequested() {
        stopContinuation.yield()
        sendWake.signal()
    }
}

/// Polls `PRAGMA data_version` on a thread of its own and yields whenever any
/// connection committed. The poll is a blocking SQLite call; on the
/// cooperative pool it would hold a thread every millisecond. Fast (1 ms)
/// for two seconds after the bridge saw rows flow (commit-to-send latency),
/// at `[bridge] poll_interval_ms` otherwise (idle CPU). `stop()` wakes the
/// thread and waits for it, so the store is never closed under a poll.
///
/// It also watches what a commit cannot show by itself: `PRAGMA
/// schema_version` after every commit (a recreated `task_queue` drops the
/// insert trigger, so reconcile must run now, not at its next tick), and the
/// file's identity at its path once per idle interval (a restore by `mv`
/// leaves every connection on the old, unlinked file).
final class DataVersionWatcher: @unchecked Sendable {
    let changes: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation
    /// The schema changed (DDL by any connection).
    let schemaChanges = Wakeup()
    /// Another file is at the path.
    let replacements = Wakeup()
    private let store: LegacyQueueStore
    private let idleInterval: Double
    /// Guards `running` and `exited`; the thread waits on it between polls.
    private let condition = NSCondition()
    private var running = false
    private var exited = true
    /// When rows last flowed (epoch seconds, as bits of a Double).
    private let activityAt = Atomic<UInt64>(0)
    static let hotInterval = 0.001
    static let hotWindow = 2.0

    init(store: LegacyQueueStore, idleInterval: Double) {
        self.store = store
        self.idleInterval = idleInterval
        (changes, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

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
        let thread = Thread { [self] in self.poll() }
        thread.name = "taskbridge-data-version"
        thread.start()
    }

    func stop() {
        condition.lock()
        running = false
        condition.broadcast()
        while !exited { condition.wait() }
        condition.unlock()
        continuation.finish()
        schemaChanges.finish()
        replacements.finish()
    }

    private func poll() {
        var last: Int64 = -1
        var lastSchema: Int64 = -1
        var statAt = 0.0
        condition.lock()
        while running {
            condition.unlock()
            if let v = try? store.dataVersion(), v != last {
                last = v
                continuation.yield()
                if let sv = try? store.schemaVersion(), sv != lastSchema {
                    if lastSchema >= 0 { schemaChanges.signal() }
                    lastSchema = sv
                }
            }
            let now = Date().timeIntervalSince1970
            if now - statAt >= idleInterval {
                statAt = now
                if store.replacedFile() != nil {
                    replacements.signal()
                    last = -1
                    lastSchema = -1
                }
            }
            let hot =
                Date().timeIntervalSince1970 - Double(bitPattern: activityAt.load(ordering: .relaxed)) < Self.hotWindow
            condition.lock()
            if running { _ = condition.wait(until: Date(timeIntervalSinceNow: hot ? Self.hotInterval : idleInterval)) }
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
