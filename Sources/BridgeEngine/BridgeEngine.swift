import BridgeConfig
import Foundation
import LegacyQueue
import Logging
import Synchronization
import TaskManagerClient
import TaskManagerModel

/// The bridge: capture -> forward -> mirror, per legacy task type, with the
/// ledger as the single source of truth so that any step can crash and be
/// replayed (PRODUCT.md sections 3 to 5).
///
/// One file per loop:
/// - `CaptureLoop`: wakes on `PRAGMA data_version` (a dedicated thread polls
///   it), decides captured rows outside the write lock, records intents;
/// - `SendLoop`: creates TaskManager tasks for due intents, bounded in flight,
///   with `SendPolicy` deciding what each failure means;
/// - `MirrorLoop`: polls only what can have changed (`MirrorPlanner`), records
///   as results arrive, with its own back-off;
/// - `ReconcileLoop`: objects, table continuity, orphans, backlog, registration;
/// - `ParityLoop`: the live parity sample.
/// This file keeps run, stop and health.
public final class BridgeEngine: Sendable {
    public let config: BridgeConfiguration
    public let store: LegacyQueueStore
    public let client: TaskManagerClient
    let policy: CapturePolicy
    let logger: Logger
    let host: String
    let state = EngineState()
    let stopping = Atomic<Bool>(false)
    /// The wake-ups of the current run (nil between runs).
    let context = Mutex<RunContext?>(nil)

    public init(
        config: BridgeConfiguration, store: LegacyQueueStore, client: TaskManagerClient, logger: Logger,
        host: String = ProcessInfo.processInfo.hostName
    ) {
        self.config = config
        self.store = store
        self.client = client
        self.logger = logger
        self.host = host
        self.policy = CapturePolicy(config: config)
    }

    /// How long a graceful stop lets requests in flight finish before it
    /// cancels them: their intents are safe in the ledger and are sent again,
    /// deduplicated, on the next start.
    public static let stopGrace: Duration = .seconds(2)

    /// Asks every loop to finish: pollers stop at once, no new sends start,
    /// and requests in flight get `stopGrace` before they are cancelled.
    /// A stop asked before `run()` began ends that run as soon as it starts:
    /// the request is cleared when a run ends, not when one begins (a run
    /// started a moment late used to clear a stop meant for it and run on).
    public func stop() {
        stopping.store(true, ordering: .releasing)
        let ctx = context.withLock { $0 }
        ctx?.stopRequested()
    }

    public var isStopping: Bool { stopping.load(ordering: .acquiring) }

    /// The `queue` label of every metric this engine emits.
    var queueLabel: String { config.queue }

    /// Installs or repairs the objects, seeds modes, then runs until `stop()`
    /// or cancellation.
    public func run() async throws {
        watchLock()
        watchWriteFailures()
        defer {
            store.lockWatch.configure(waitForever: false, observer: nil)
            store.writeFailures.configure(observer: nil)
            stopping.store(false, ordering: .releasing)
        }
        try await withTaskCancellationHandler {
            try await runLoops()
        } onCancel: {
            stop()
        }
    }

    /// A daemon rides out another process's write lock: one warning when the
    /// wait begins, one info when it ends, the current wait as a gauge.
    func watchLock() {
        let logger = self.logger, path = store.path, queue = queueLabel
        store.lockWatch.configure(waitForever: true) { event in
            switch event {
            case .began:
                logger.warning(
                    "the legacy file is write-locked by another process; waiting for it",
                    metadata: ["database": "\(path)"])
                BridgeMetrics.lockWait.set(0, queue)
            case .waiting(let seconds):
                BridgeMetrics.lockWait.set(seconds, queue)
            case .ended(let seconds):
                logger.info(
                    "the legacy file's write lock is free again; catching up",
                    metadata: ["waited_seconds": "\(seconds.rounded(toPlaces: 1))"])
                BridgeMetrics.lockWait.set(0, queue)
            }
        }
    }

    /// A full disk (or another write failure only the outside can fix):
    /// one warning when writes start failing, one info when one succeeds
    /// again, the episode as a gauge; the loops retry quietly meanwhile.
    func watchWriteFailures() {
        let logger = self.logger, path = store.path, queue = queueLabel
        store.writeFailures.configure { event in
            switch event {
            case .began(let reason):
                logger.warning(
                    "writes to the legacy file fail (disk full?); retrying quietly until one succeeds",
                    metadata: ["database": "\(path)", "reason": "\(LogSafe.escape(reason))"])
                BridgeMetrics.writeFailing.set(1, queue)
            case .ended(let seconds):
                logger.info(
                    "writes to the legacy file succeed again; catching up",
                    metadata: ["failed_for_seconds": "\(seconds.rounded(toPlaces: 1))"])
                BridgeMetrics.writeFailing.set(0, queue)
            }
        }
    }

    private func runLoops() async throws {
        try await reconcileObjects()
        for m in config.types
        where try await store.seedMode(
            taskType: m.legacyType, mode: m.mode.rawValue, shareBy: m.canaryShare, host: host)
        {
            logger.info(
                "type starts in its configured mode",
                metadata: ["type": "\(m.legacyType)", "mode": "\(m.mode.rawValue)"])
        }
        for t in try await store.syncShareBy(
            Dictionary(config.types.map { ($0.legacyType, $0.canaryShare) }, uniquingKeysWith: { a, _ in a }))
        {
            logger.notice(
                "the canary of this type now follows its dedupe mode in bridge.conf", metadata: ["type": "\(t)"])
        }
        try await refreshModes()
        let ctx = RunContext(
            store: store, idleInterval: config.bridge.pollIntervalSeconds, queueLabel: queueLabel, logger: logger,
            notifications: config.bridge.fileNotifications)
        context.withLock { $0 = ctx }
        defer { context.withLock { $0 = nil } }
        if isStopping { ctx.stopRequested() }
        ctx.watcher.start()
        defer { ctx.watcher.stop() }

        // Pollers end at stop; the sender drains within the grace period.
        let pollers = Task {
            await withTaskGroup(of: Void.self) { group in
                let loops: [(String, @Sendable () async throws -> Void)] = [
                    ("capture", { try await self.captureLoop(ctx) }), ("mirror", { try await self.mirrorLoop(ctx) }),
                    ("reconcile", { try await self.reconcileLoop(ctx) }),
                    ("register", { try await self.registerLoop(ctx) }),
                    ("parity", { try await self.parityLoop() }), ("reverse", { try await self.reverseLoop(ctx) }),
                    ("reopen", { try await self.replacementLoop(ctx) }), ("shadow", { try await self.shadowLoop(ctx) }),
                ]
                for (name, body) in loops { group.addTask { await self.guarded(name, body) } }
            }
        }
        let sender = Task { await self.guarded("send") { try await self.sendLoop(ctx) } }
        for await _ in ctx.stopEvents { break }
        pollers.cancel()
        let grace = Task {
            try await Task.sleep(for: Self.stopGrace)
            sender.cancel()
        }
        await sender.value
        grace.cancel()
        await pollers.value
    }

    /// A loop that throws is logged and restarted after a pause: a bad
    /// moment (disk full, a failed read) must not end the process.
    private func guarded(_ name: String, _ body: @Sendable () async throws -> Void) async {
        while !isStopping && !Task.isCancelled {
            do {
                try await body()
                return
            } catch is CancellationError {
                return
            } catch {
                if Task.isCancelled { return }
                await failed(name, error, "loop failed; restarting")
            }
        }
    }

    /// One turn of a loop that iterates a stream: a failure is logged,
    /// counted and paused after, and the loop goes on with its next wake-up
    /// (leaving the iteration would end the stream it reads).
    @discardableResult
    func attempt(_ name: String, _ body: () async throws -> Void) async -> Bool {
        do {
            try await body()
            return true
        } catch {
            if error is CancellationError || Task.isCancelled { return false }
            await failed(name, error, "loop failed; retrying")
            return false
        }
    }

    /// What a loop's failure means, for both kinds of loop: a replaced file
    /// is not a failure (the replacement loop reopens it and logs it once);
    /// a full disk is reported once by `watchWriteFailures` and retried
    /// quietly; anything else is logged. All but the first are counted and
    /// paused after.
    private func failed(_ name: String, _ error: any Error, _ message: Logger.Message) async {
        if case .fileReplaced? = error as? LegacyQueueError {
            context.withLock { $0 }?.watcher.replacements.signal()
            // Soon reopened, unless a restore left the old WAL beside the copy.
            try? await Task.sleep(for: store.restoreIncomplete ? .seconds(1) : .milliseconds(20))
            return
        }
        if !WriteFailureWatch.isPersistent(error) {
            logger.error(message, metadata: ["loop": "\(name)", "error": "\(error)"])
        }
        BridgeMetrics.loopErrors.increment(queueLabel, name)
        try? await Task.sleep(for: .seconds(1))
    }

    // MARK: - API errors

    func noteAPIError(_ error: TaskManagerError, context: String) async {
        let unauthorized: Bool
        if case .unauthorized = error { unauthorized = true } else { unauthorized = false }
        let snap = await state.snapshot()
        // One line per problem per 30 s: an outage must not flood the log.
        if snap.lastAPIError != error.description || Date().timeIntervalSince1970 - snap.lastAPIErrorAt > 30 {
            if unauthorized {
                logger.error(
                    "TaskManager rejected the API key (401); check TASKMANAGER_API_KEY",
                    metadata: ["during": "\(context)"])
            } else {
                logger.warning("TaskManager request failed", metadata: ["during": "\(context)", "error": "\(error)"])
            }
        }
        await state.recordAPIError(error.description, unauthorized: unauthorized)
        BridgeMetrics.apiErrors.increment(queueLabel, Self.kind(error))
    }

    static func kind(_ e: TaskManagerError) -> String {
        switch e {
        case .configuration: return "configuration"
        case .unauthorized: return "unauthorized"
        case .forbidden: return "forbidden"
        case .notFound: return "not_found"
        case .validation: return "validation"
        case .payloadTooLarge: return "too_large"
        case .rateLimited: return "rate_limited"
        case .server: return "server"
        case .transport: return "transport"
        case .undecodable: return "undecodable"
        }
    }

    // MARK: - Health

    public struct Health: Sendable {
        public var healthy: Bool
        public var details: JSONValue
    }

    public func health() async -> Health {
        let s = await state.snapshot()
        let now = Date().timeIntervalSince1970
        let stalled = now - s.lastLoopAt > max(10, config.bridge.pollIntervalSeconds * 100)
        let healthy = !s.unauthorized && s.objectsHealthy && !stalled && store.writeFailures.current == nil
        var details: [JSONMember] = [
            JSONMember("status", .string(healthy ? "ok" : "degraded")),
            JSONMember("api_key_accepted", .bool(!s.unauthorized)),
            JSONMember("objects_intact", .bool(s.objectsHealthy)),
            JSONMember("capture_loop_age_seconds", .double((now - s.lastLoopAt).rounded(toPlaces: 3))),
            JSONMember("open_circuits", .array(s.openBreakers.map { .string($0) })),
            JSONMember("legacy_lock_wait_seconds", .double(store.lockWatch.currentWait.rounded(toPlaces: 3))),
            JSONMember(
                "legacy_write_failing_seconds",
                store.writeFailures.current.map { .double($0.seconds.rounded(toPlaces: 1)) } ?? .null),
        ]
        if let w = store.writeFailures.current {
            details.append(JSONMember("legacy_write_failure", .string(LogSafe.escape(w.reason))))
        }
        if let e = s.lastAPIError { details.append(JSONMember("last_api_error", .string(LogSafe.escape(e)))) }
        return Health(healthy: healthy, details: .object(details))
    }
}

extension BridgeEngine {
    /// The TaskManager side as the engine last saw it, for the dashboard:
    /// reachable (no failure since the last success), the last error, the
    /// global pause (429 Retry-After, 401) and each type's breaker.
    public func apiSide(now: Date = Date()) async -> JSONValue {
        let s = await state.snapshot()
        let t = now.timeIntervalSince1970
        var breakers: [JSONValue] = []
        for m in config.types {
            let b = s.breakers[m.name]
            let open = b?.open ?? false
            breakers.append([
                "task_type": .string(m.legacyType), "tm_type": .string(m.name),
                "state": .string(open ? "open" : ((b?.failures ?? 0) > 0 ? "failing" : "closed")),
                "failures": .int(Int64(b?.failures ?? 0)),
                "closes_in_seconds": b?.probeIn.map { .double($0.rounded(toPlaces: 1)) } ?? .null,
            ])
        }
        return [
            "url": .string(config.taskManager.isEmbedded ? "embedded" : LogSafe.escape(config.taskManager.url)),
            "reachable": .bool(s.failingSince == nil && !s.unauthorized),
            "api_key_accepted": .bool(!s.unauthorized),
            "failing_for_seconds": s.failingSince.map { .double((t - $0).rounded(toPlaces: 1)) } ?? .null,
            "last_error": s.lastAPIError.map { .string(LogSafe.escape($0)) } ?? .null,
            "last_error_age_seconds": s.lastAPIError == nil
                ? .null : .double((t - s.lastAPIErrorAt).rounded(toPlaces: 1)),
            "paused_for_seconds": s.pausedUntil > t ? .double((s.pausedUntil - t).rounded(toPlaces: 1)) : .null,
            "breakers": .array(breakers),
            "capture_loop_age_seconds": .double((t - s.lastLoopAt).rounded(toPlaces: 3)),
            "objects_intact": .bool(s.objectsHealthy),
        ]
    }
}

public struct BridgeStartError: Error, CustomStringConvertible, Sendable {
    public var description: String
    init(_ d: String) { description = d }
}
