import BridgeConfig
import Foundation
import LegacyQueue
import Logging
import Metrics
import TaskManagerClient
import TaskManagerModel

/// The bridge: capture -> forward -> mirror, per legacy task type, with the
/// ledger as the single source of truth so that any step can crash and be
/// replayed (PRODUCT.md sections 3 to 5).
///
/// Four loops run side by side:
/// - capture: wakes on `PRAGMA data_version`, consumes change rows, claims
///   the backlog of forward types, records write-ahead intents;
/// - send: creates TaskManager tasks for due intents, bounded in flight,
///   with per-row backoff, a per-type breaker and global pauses;
/// - mirror: polls only what can have changed and writes it back;
/// - reconcile: checks the `_taskbridge_*` objects, adopts orphan rows,
///   re-arms the backlog scan.
public final class BridgeEngine: Sendable {
    public let config: BridgeConfiguration
    public let store: LegacyQueueStore
    public let client: TaskManagerClient
    let policy: CapturePolicy
    let logger: Logger
    let host: String
    let state = EngineState()
    let sendSignal = WakeSignal()
    let stopping = Flag()
    /// Wakes sleeping loops when `stop()` is called, so a long idle sleep
    /// never delays a graceful shutdown.
    let stopSignal = Broadcast()

    public init(config: BridgeConfiguration, store: LegacyQueueStore, client: TaskManagerClient, logger: Logger,
                host: String = ProcessInfo.processInfo.hostName) {
        self.config = config
        self.store = store
        self.client = client
        self.logger = logger
        self.host = host
        self.policy = CapturePolicy(config: config)
    }

    /// Asks every loop to finish: no new claims or sends; requests in flight
    /// complete (or are abandoned safely: their intents stay in the ledger
    /// and are re-sent, deduplicated, on the next start).
    public func stop() {
        stopping.set()
        sendSignal.signal()
        stopSignal.fire()
    }

    public var isStopping: Bool { stopping.isSet }

    /// Installs or repairs the objects, seeds modes, then runs until `stop()`
    /// or cancellation.
    public func run() async throws {
        stopping.reset()
        stopSignal.reset()
        watchLock()
        defer { store.lockWatch.configure(waitForever: false, observer: nil) }
        try await withTaskCancellationHandler {
            try await runLoops()
        } onCancel: {
            stop()
        }
    }

    /// How long a graceful stop lets requests in flight finish before it
    /// cancels them: their intents are safe in the ledger and are sent again,
    /// deduplicated, on the next start.
    public static let stopGrace: Duration = .seconds(2)

    /// A daemon rides out another process's write lock: one warning when the
    /// wait begins, one info when it ends, the current wait as a gauge.
    func watchLock() {
        let logger = self.logger, path = store.path
        store.lockWatch.configure(waitForever: true) { event in
            switch event {
            case .began:
                logger.warning("the legacy file is write-locked by another process; waiting for it",
                               metadata: ["database": "\(path)"])
                BridgeMetrics.lockWait.set(0)
            case .waiting(let seconds):
                BridgeMetrics.lockWait.set(seconds)
            case .ended(let seconds):
                logger.info("the legacy file's write lock is free again; catching up",
                            metadata: ["waited_seconds": "\(seconds.rounded(toPlaces: 1))"])
                BridgeMetrics.lockWait.set(0)
            }
        }
    }

    private enum LoopEnd { case loop, graceOver }

    private func runLoops() async throws {
        try await reconcileObjects()
        for m in config.types {
            if try await store.seedMode(taskType: m.legacyType, mode: m.mode.rawValue, host: host) {
                logger.info("type starts in its configured mode", metadata: ["type": "\(m.legacyType)", "mode": "\(m.mode.rawValue)"])
            }
        }
        try await refreshModes()
        await withTaskGroup(of: LoopEnd.self) { group in
            let loops: [(String, @Sendable () async throws -> Void)] = [
                ("capture", captureLoop), ("send", sendLoop), ("mirror", mirrorLoop), ("reconcile", reconcileLoop),
                ("register", registerLoop), ("parity", parityLoop),
            ]
            for (name, body) in loops {
                group.addTask {
                    await self.guarded(name, body)
                    return .loop
                }
            }
            // Once stop is asked, the loops get a grace period to finish what
            // is in the air; then whatever still waits on the network is cancelled.
            group.addTask {
                while !self.isStopping && !Task.isCancelled { await self.stopSignal.wait(timeout: .seconds(3600)) }
                try? await Task.sleep(for: Self.stopGrace)
                return .graceOver
            }
            var running = loops.count
            while let end = await group.next() {
                switch end {
                case .graceOver:
                    group.cancelAll()
                case .loop:
                    running -= 1
                    if running == 0 {
                        stop()  // wakes the grace watcher, which then ends at once
                        group.cancelAll()
                    }
                }
            }
        }
    }

    /// A loop that throws is logged and restarted after a pause: a bad
    /// moment (disk full, lock timeout) must not end the process.
    private func guarded(_ name: String, _ body: @Sendable () async throws -> Void) async {
        while !isStopping && !Task.isCancelled {
            do {
                try await body()
                return
            } catch is CancellationError {
                return
            } catch {
                logger.error("loop failed; restarting", metadata: ["loop": "\(name)", "error": "\(error)"])
                BridgeMetrics.loopErrors.increment(name)
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    private func sleep(_ seconds: Double) async {
        if isStopping { return }
        await stopSignal.wait(timeout: .milliseconds(Int64(seconds * 1000)))
    }

    // MARK: - Capture

    func refreshModes() async throws {
        let raw = try await store.modes()
        var modes: [String: BridgeMode] = [:]
        for (k, v) in raw { modes[k] = BridgeMode(rawValue: v) ?? .off }
        let entered = await state.setModes(modes)
        for t in entered { logger.info("type entered forward mode; claiming its backlog", metadata: ["type": "\(t)"]) }
    }

    func captureLoop() async throws {
        var lastVersion: Int64 = -1
        var lastActivity = Date().timeIntervalSince1970
        var lastModeRefresh = 0.0
        while !isStopping {
            let now = Date().timeIntervalSince1970
            let version = try store.dataVersion()
            if version != lastVersion || now - lastModeRefresh >= config.bridge.pollIntervalSeconds * 20 {
                lastVersion = version
                lastModeRefresh = now
                try await refreshModes()
                let didWork = try await captureOnce()
                if didWork {
                    lastActivity = now
                    sendSignal.signal()
                }
                await state.tick()
            }
            // Poll fast while rows are arriving (commit-to-send latency),
            // slowly when idle (idle CPU).
            let recent = Date().timeIntervalSince1970 - lastActivity < 2
            if recent {
                try? await Task.sleep(for: .milliseconds(1))
            } else {
                await sleep(config.bridge.pollIntervalSeconds)
            }
        }
    }

    /// One pass: change rows, then the backlog. True if anything was captured.
    func captureOnce() async throws -> Bool {
        var any = false
        let modes = await state.modes
        let policy = self.policy
        while !isStopping {
            let r = try await store.processChanges(limit: 500) { row in policy.decide(row, mode: modes[row.taskType]) }
            if r.processed > 0 { any = true }
            if r.requeued > 0 { await state.markBacklog(true) }
            count(r)
            if !r.remaining { break }
        }
        if await state.backlogPending {
            let forward = modes.filter { $0.value.claimsRows }.map(\.key).sorted()
            var remaining = true
            while remaining && !isStopping && !forward.isEmpty {
                let r = try await store.claimBacklog(types: forward, limit: config.bridge.batchSize) { row in policy.decide(row, mode: modes[row.taskType]) }
                if r.processed > 0 {
                    any = true
                    logger.debug("claimed backlog rows", metadata: ["count": "\(r.processed)"])
                }
                count(r)
                remaining = r.remaining
            }
            let dry = modes.filter { $0.value == .dryRun }.map(\.key).sorted()
            if !dry.isEmpty {
                let rows = try await store.dryRunBacklog(types: dry, limit: 1000)
                var verdicts: [(Int64, String, String, String?)] = []
                for row in rows {
                    if case .dryRun(let v, let reason) = policy.decide(row, mode: .dryRun) {
                        verdicts.append((row.id, row.taskType, v, reason))
                        BridgeMetrics.dryRun.increment(row.taskType, v)
                    }
                }
                try await store.recordDryRun(verdicts)
            }
            if !remaining { await state.markBacklog(false) }
        }
        return any
    }

    private func count(_ r: LegacyQueueStore.CaptureResult) {
        for (type, n) in r.intentsByType { BridgeMetrics.captured.increment(type, by: n) }
        for (key, n) in r.verdicts { BridgeMetrics.dryRun.increment(key.taskType, key.verdict, by: n) }
        noteQuarantines(r.quarantines)
    }

    /// Every quarantine is logged (warning) and counted, wherever it happened:
    /// legacy id, type and reason, and only a short excerpt of the detail,
    /// which may quote the row's params.
    func noteQuarantines(_ events: [LegacyQueueStore.QuarantineEvent]) {
        for q in events {
            let excerpt = q.detail.count > 160 ? String(q.detail.prefix(160)) + "..." : q.detail
            logger.warning("row quarantined", metadata: [
                "legacy_id": "\(q.legacyID)", "type": "\(q.taskType)", "reason": "\(q.code)", "detail": "\(LogSafe.escape(excerpt))",
            ])
            BridgeMetrics.quarantined.increment(q.taskType, q.code)
        }
    }

    // MARK: - Registration

    func registerLoop() async throws {
        var attempt: Int64 = 0
        while !isStopping {
            var pending = false
            for m in config.types where !(await state.isRegistered(m.name)) {
                do {
                    let r = try await client.registerTaskType(name: m.name, version: m.version, paramSchema: m.paramSchema)
                    await state.markRegistered(m.name)
                    if await state.recordAPISuccess() { try? await store.resetBackoff() }
                    logger.info("task type registered", metadata: ["type": "\(m.legacyType)", "name": "\(m.name)", "created": "\(r.created)"])
                } catch {
                    pending = true
                    await noteAPIError(error, context: "register \(m.name)")
                }
            }
            if !pending {
                sendSignal.signal()
                return
            }
            attempt += 1
            await sleep(backoff(attempts: attempt, base: 0.25, cap: 5))
        }
    }

    func noteAPIError(_ error: TaskManagerError, context: String) async {
        let unauthorized: Bool
        if case .unauthorized = error { unauthorized = true } else { unauthorized = false }
        let snap = await state.snapshot()
        // One line per problem per 30 s: an outage must not flood the log.
        if snap.lastAPIError != error.description || Date().timeIntervalSince1970 - snap.lastAPIErrorAt > 30 {
            if unauthorized {
                logger.error("TaskManager rejected the API key (401); check TASKMANAGER_API_KEY", metadata: ["during": "\(context)"])
            } else {
                logger.warning("TaskManager request failed", metadata: ["during": "\(context)", "error": "\(error)"])
            }
        }
        await state.recordAPIError(error.description, unauthorized: unauthorized)
        BridgeMetrics.apiErrors.increment(Self.kind(error))
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

    // MARK: - Send

    typealias Sent = (LegacyQueueStore.SendOutcome, TaskInfoRequest?)

    enum SendEvent: Sendable {
        case sent(Int64, Sent)
        /// New intents were captured, a backoff or run_after passed, or the
        /// idle wait ran out: look for due intents.
        case tick
    }

    /// A continuous pipeline: up to `max_in_flight` creates in the air;
    /// outcomes are recorded in batches (one transaction per batch). A tick
    /// task in the same group wakes the loop when capture signals new
    /// intents, so a slow or hanging request never holds back rows behind
    /// it. Intents being sent are still `intent` in the ledger, so a crash
    /// re-sends them.
    func sendLoop() async throws {
        let capacity = config.bridge.maxInFlight
        var sending = Set<Int64>()
        var outcomes: [Sent] = []
        var topUp = true
        try await withThrowingTaskGroup(of: SendEvent.self) { group in
            var running = 0
            var tickPending = false
            var recordedPending: [Int64] = []
            while true {
                if topUp && !isStopping && running < capacity {
                    topUp = false
                    for e in try await dueBatch(limit: capacity - running, excluding: sending) {
                        sending.insert(e.legacyID)
                        running += 1
                        group.addTask { .sent(e.legacyID, await self.send(e)) }
                    }
                }
                if isStopping && running == 0 {
                    try await record(&outcomes)
                    if tickPending { sendSignal.signal() }
                    group.cancelAll()
                    return
                }
                if !tickPending && !isStopping {
                    tickPending = true
                    var wait = 0.1
                    if running == 0 {
                        try await record(&outcomes)
                        for done in recordedPending { sending.remove(done) }
                        recordedPending.removeAll()
                        // Idle: sleep until the next intent's run_after_utc
                        // or backoff passes, at most a second.
                        let now = Date().timeIntervalSince1970
                        let next = try await store.nextIntentDue() ?? (now + 1)
                        wait = min(1, max(0.005, max(next, await state.pausedUntil()) - now))
                    }
                    let signal = sendSignal
                    group.addTask {
                        await signal.wait(timeout: .milliseconds(Int64(wait * 1000)))
                        return .tick
                    }
                }
                guard let event = try await group.next() else { continue }
                switch event {
                case .tick:
                    tickPending = false
                    topUp = true
                case .sent(let id, let sent):
                    running -= 1
                    outcomes.append(sent)
                    recordedPending.append(id)
                    if outcomes.count >= max(1, capacity / 2) || running <= capacity / 2 {
                        try await record(&outcomes)
                        // Only now may these rows be picked again: until the
                        // outcome is in the ledger they still read `intent`.
                        for done in recordedPending { sending.remove(done) }
                        recordedPending.removeAll()
                        topUp = true
                    }
                }
            }
        }
    }

    /// Due intents that may be sent now: not paused, type registered, its
    /// breaker closed, not already in the air.
    func dueBatch(limit: Int, excluding: Set<Int64>) async throws -> [LedgerEntry] {
        guard limit > 0 else { return [] }
        let now = Date().timeIntervalSince1970
        if now < (await state.pausedUntil()) { return [] }
        let open = await state.openBreakers(now: now)
        let registered = await state.registered
        let modes = await state.modes
        let candidates = try await store.dueIntents(now: now, limit: limit + excluding.count)
        let batch = Array(candidates.filter { !excluding.contains($0.legacyID) && !open.contains($0.tmType) && registered.contains($0.tmType) }
            .prefix(limit))
        for e in batch where modes[e.taskType] == .retired {
            logger.warning("row arrived for a retired type; forwarding it", metadata: ["type": "\(e.taskType)", "id": "\(e.legacyID)"])
            BridgeMetrics.retiredRows.increment(e.taskType)
        }
        return batch
    }

    func record(_ outcomes: inout [Sent]) async throws {
        guard !outcomes.isEmpty else { return }
        let batch = outcomes
        outcomes.removeAll(keepingCapacity: true)
        let quarantines = try await store.recordSends(batch.map(\.0))
        noteQuarantines(quarantines)
        var forwarded = 0, collapsed = 0
        for (o, _) in batch {
            if case .sent(_, _, _, let c) = o {
                forwarded += 1
                if c { collapsed += 1 }
            }
        }
        BridgeMetrics.forwarded.increment(by: forwarded)
        BridgeMetrics.collapsed.increment(by: collapsed)
        // A collapse onto a finished task gets that result at once.
        let finished = batch.compactMap(\.1)
        if !finished.isEmpty { try await mirrorNow(finished) }
    }

    /// One wave (for `driveOnce`): send every due intent that fits, record.
    func sendWave() async throws -> Int {
        let batch = try await dueBatch(limit: config.bridge.maxInFlight, excluding: [])
        guard !batch.isEmpty else { return 0 }
        var outcomes = await withTaskGroup(of: Sent.self) { group in
            for e in batch { group.addTask { await self.send(e) } }
            var out: [Sent] = []
            for await o in group { out.append(o) }
            return out
        }
        try await record(&outcomes)
        return batch.count
    }

    struct TaskInfoRequest: Sendable {
        var legacyID: Int64
        var taskID: Int64
    }

    func send(_ e: LedgerEntry) async -> (LegacyQueueStore.SendOutcome, TaskInfoRequest?) {
        guard let json = e.paramsJSON, let params = try? JSONParser.parse(json) else {
            return (.rejected(legacyID: e.legacyID, taskType: e.taskType, code: "ledger_corrupt", detail: "ledger params are unreadable"), nil)
        }
        var reRegistered = false
        while true {
            do {
                let r = try await client.createTask(type: e.tmType, params: params, priority: e.priority.map(Int.init))
                await state.breakerSuccess(e.tmType)
                await state.recordSendSuccess(e.tmType, at: Date().timeIntervalSince1970)
                if await state.recordAPISuccess() {
                    // The API is back: rows waiting out a backoff go now.
                    try? await store.resetBackoff()
                    sendSignal.signal()
                }
                let terminal = TaskStatus(rawValue: r.status)?.isTerminal ?? false
                return (.sent(legacyID: e.legacyID, taskID: r.id, status: r.status, collapsed: r.deduplicated),
                        terminal ? TaskInfoRequest(legacyID: e.legacyID, taskID: r.id) : nil)
            } catch {
                let now = Date().timeIntervalSince1970
                if Task.isCancelled {
                    // Stopping: the intent stays as it is and is sent again on the next start.
                    return (.abandoned(legacyID: e.legacyID), nil)
                }
                await noteAPIError(error, context: "create task for row \(e.legacyID)")
                let context = SendPolicy.Context(entry: e, now: now, typeLastSuccessAt: await state.lastSendSuccess(e.tmType),
                                                 reRegistered: reRegistered)
                switch SendPolicy.decide(error, context, sendSettings) {
                case .reRegister:
                    reRegistered = true
                    if let m = config.types.first(where: { $0.name == e.tmType }),
                        (try? await client.registerTaskType(name: m.name, version: m.version, paramSchema: m.paramSchema)) != nil
                    {
                        continue
                    }
                    return (.retry(legacyID: e.legacyID, error: error.description, nextAttemptAt: now + backoff(attempts: e.attempts)), nil)
                case .quarantine(let code, let detail):
                    return (.rejected(legacyID: e.legacyID, taskType: e.taskType, code: code, detail: detail), nil)
                case .retry(let delay, let pauseAll, let breaker, let streak, let streakStart):
                    if let pauseAll { await state.pause(until: now + pauseAll) }
                    if breaker, await state.breakerFailure(e.tmType, now: now) {
                        logger.warning("circuit opened for type after repeated failures", metadata: ["name": "\(e.tmType)"])
                    }
                    let wait = pauseAll == nil ? delay * Double.random(in: 0.8...1.2) : delay
                    return (.retry(legacyID: e.legacyID, error: error.description, nextAttemptAt: now + wait,
                                   errorStreak: streak, streakStartedAt: streakStart), nil)
                }
            }
        }
    }

    var sendSettings: SendPolicy.Settings {
        SendPolicy.Settings(persistentAttempts: Int64(config.bridge.persistentErrorAttempts),
                            persistentSeconds: config.bridge.persistentErrorSeconds)
    }

    // MARK: - Mirror

    func mirrorLoop() async throws {
        while !isStopping {
            let busy = try await mirrorCycle()
            // Nothing in flight: a slower beat (a new task is first re-checked
            // a second after it is sent anyway).
            await sleep(busy ? config.bridge.mirrorIntervalSeconds : max(config.bridge.mirrorIntervalSeconds, 1))
        }
    }

    /// One mirror pass against an API without a change feed: list the
    /// claimed tasks of each type (few: one per busy worker) and the newest
    /// finished ones; fetch individually only the tasks that left `claimed`,
    /// appear finished, or whose scheduled re-check (growing with age) is due.
    @discardableResult
    func mirrorCycle() async throws -> Bool {
        let now = Date().timeIntervalSince1970
        if now < (await state.pausedUntil()) { return true }
        // From the ledger, not the config: a type rolled back and removed
        // from bridge.conf still has tasks to mirror.
        let names = try await store.inFlightTaskManagerTypes()
        guard !names.isEmpty else { return false }
        var claimed: [Int64: TaskInfo] = [:]
        var finished: Set<Int64> = []
        for name in names {
            do {
                for t in try await client.listTasks(statuses: ["claimed"], type: name, limit: 1000) { claimed[t.id] = t }
                for t in try await client.listTasks(statuses: ["completed", "failed"], type: name, limit: 200) { finished.insert(t.id) }
            } catch {
                await noteAPIError(error, context: "list tasks of \(name)")
                return true
            }
        }
        let listed = try await store.inFlight(taskIDs: Array(claimed.keys) + Array(finished))
        let candidates = try await store.mirrorCandidates(now: now, edge: Self.edgeChecks, budget: Self.fetchBudget)
        var updates: [LegacyQueueStore.MirrorUpdate] = []
        var seen = Set<Int64>()
        var fetch: [LedgerEntry] = []
        func consider(_ e: LedgerEntry) {
            guard let id = e.tmTaskID, seen.insert(e.legacyID).inserted else { return }
            if let c = claimed[id] {
                if e.tmStatus != "claimed" || e.nextAttemptAt <= now {
                    updates.append(.init(legacyID: e.legacyID, tmStatus: "claimed", attempts: c.attempts, result: nil, error: nil,
                                         nextCheckAt: now + recheckInterval(e, now: now)))
                }
            } else if fetch.count < Self.fetchBudget {
                fetch.append(e)
            }
        }
        // In order of how likely the task has changed: it appears finished or
        // claimed now; it was claimed before; it sits at an end of the queue
        // (FIFO workers take the oldest, LIFO the newest); its re-check is due.
        for e in listed { consider(e) }
        for e in candidates.moving { consider(e) }
        for e in candidates.edges { consider(e) }
        for e in candidates.due { consider(e) }
        // A few GETs at a time: mirroring must not crowd out the sends that
        // share the client's connections (it showed in the send latency tail).
        let fetched = await withTaskGroup(of: LegacyQueueStore.MirrorUpdate?.self) { group in
            var out: [LegacyQueueStore.MirrorUpdate] = []
            var next = 0
            for _ in 0..<min(Self.mirrorConcurrency, fetch.count) {
                let e = fetch[next]
                next += 1
                group.addTask { await self.fetchUpdate(e, now: now) }
            }
            for await u in group {
                if let u { out.append(u) }
                if next < fetch.count {
                    let e = fetch[next]
                    next += 1
                    group.addTask { await self.fetchUpdate(e, now: now) }
                }
            }
            return out
        }
        updates += fetched
        let done = try await store.recordMirror(updates)
        BridgeMetrics.mirrored.increment(by: done)
        return true
    }

    /// Individual GETs per mirror cycle, at most.
    static let fetchBudget = 256
    /// Pending tasks checked at each end of the queue per cycle.
    static let edgeChecks = 32
    /// Mirror GETs in flight at once.
    static let mirrorConcurrency = 8

    func recheckInterval(_ e: LedgerEntry, now: Double) -> Double {
        let age = LegacyTimestamp.parse(e.claimedAt).map { now - $0.timeIntervalSince1970 } ?? 60
        return min(60, max(2, age / 4))
    }

    func fetchUpdate(_ e: LedgerEntry, now: Double) async -> LegacyQueueStore.MirrorUpdate? {
        guard let id = e.tmTaskID else { return nil }
        do {
            let t = try await client.getTask(id: id)
            return .init(legacyID: e.legacyID, tmStatus: t.rawStatus, attempts: t.attempts, result: t.result, error: t.errorMessage,
                         nextCheckAt: now + recheckInterval(e, now: now))
        } catch {
            await noteAPIError(error, context: "get task \(id)")
            return nil
        }
    }

    func mirrorNow(_ requests: [TaskInfoRequest]) async throws {
        let ids = requests.map(\.taskID)
        let entries = try await store.inFlight(taskIDs: ids)
        let now = Date().timeIntervalSince1970
        var updates: [LegacyQueueStore.MirrorUpdate] = []
        for e in entries {
            if let u = await fetchUpdate(e, now: now) { updates.append(u) }
        }
        let done = try await store.recordMirror(updates)
        BridgeMetrics.mirrored.increment(by: done)
    }

    // MARK: - Reconcile

    func reconcileObjects() async throws {
        if let previous = try await store.installedBridgeID(), previous != config.bridge.id {
            let held = try await store.rowsHeldInFlight()
            if held > 0 {
                throw BridgeStartError(
                    "[bridge] id changed from \"\(previous)\" to \"\(config.bridge.id)\" while \(held) row(s) are claimed under the old id; "
                        + "change it back until they are done (rows are matched by claimed_by)")
            }
        }
        switch try await store.objectsHealth() {
        case .intact:
            await state.setObjectsHealthy(true)
        case .notInstalled:
            try await store.install()
            logger.info("installed the _taskbridge_* objects", metadata: ["database": "\(store.path)"])
            await state.setObjectsHealthy(true)
        case .outdated:
            try await store.install()
            logger.notice("reinstalled the _taskbridge_* objects (definition changed: bridge id, table or version)")
            await state.setObjectsHealthy(true)
        case .damaged(let missing, let altered):
            logger.warning("_taskbridge_* objects were dropped or altered; reinstalling",
                           metadata: ["missing": "\(missing.joined(separator: ","))", "altered": "\(altered)"])
            BridgeMetrics.objectsRepaired.increment()
            try await store.install()
            // A recreated mode table is empty: give every type its configured
            // starting mode again rather than leaving forward types `off`.
            for m in config.types where try await store.seedMode(taskType: m.legacyType, mode: m.mode.rawValue, host: host) {
                logger.error("mode table was lost; type reset to its configured mode (check the audit trail)",
                             metadata: ["type": "\(m.legacyType)", "mode": "\(m.mode.rawValue)"])
            }
            await state.setObjectsHealthy(true)
            // Rows inserted while a trigger was missing were not claimed at
            // capture: sweep for them now, not at the next full reconcile.
            await state.markBacklog(true)
            sendSignal.signal()
        }
    }

    func reconcileLoop() async throws {
        var lastFull = 0.0
        while !isStopping {
            try await reconcileObjects()
            let now = Date().timeIntervalSince1970
            if now - lastFull >= config.bridge.reconcileIntervalSeconds {
                lastFull = now
                let policy = self.policy
                let modes = await state.modes
                var remaining = true
                while remaining && !isStopping {
                    let r = try await store.adoptOrphans(limit: 500) { row in policy.decide(row, mode: modes[row.taskType]) }
                    if r.processed > 0 { logger.notice("adopted rows the bridge held without a ledger entry", metadata: ["count": "\(r.processed)"]) }
                    remaining = r.remaining
                }
                await state.markBacklog(true)
                sendSignal.signal()
            }
            // Object integrity is cheap to check: every ten seconds.
            await sleep(10)
        }
    }

    // MARK: - One-shot driving (verify --repair without a running bridge)

    /// One pass of every loop, for commands that re-drive rows when no
    /// bridge may be running: register, capture, send what is due, mirror.
    public func driveOnce(timeout: Double = 60) async throws {
        for m in config.types where !(await state.isRegistered(m.name)) {
            if (try? await client.registerTaskType(name: m.name, version: m.version, paramSchema: m.paramSchema)) != nil {
                await state.markRegistered(m.name)
            }
        }
        try await refreshModes()
        _ = try await captureOnce()
        let deadline = Date().timeIntervalSince1970 + timeout
        while Date().timeIntervalSince1970 < deadline, try await sendWave() > 0 {}
        try await mirrorCycle()
    }

    // MARK: - Live parity

    /// A small random sample of forwarded rows compared with their tasks,
    /// so drift shows in `status` and metrics before anyone runs verify.
    func sampleParity(size: Int = 20) async throws {
        let sample = try await store.paritySample(size: size)
        guard !sample.isEmpty else { return }
        let now = Date().timeIntervalSince1970
        var results: [(Int64, String, String?, String?)] = []
        for item in sample {
            guard let l = item.ledger, let id = l.tmTaskID else { continue }
            do {
                let task = try await client.getTask(id: id)
                let settled = (LegacyTimestamp.parse(l.updatedAt ?? l.claimedAt).map { now - $0.timeIntervalSince1970 } ?? 0) > 60
                let f = ParityClassifier.compare(row: item.row, mapping: config.mapping(forLegacyType: item.row.taskType), ledger: l,
                                                 task: task, settled: settled).first { $0.kind.breaksParity }
                results.append((item.row.id, item.row.taskType, f?.kind.rawValue, f?.detail))
                if let f { BridgeMetrics.parityFindings.increment(f.kind.rawValue) }
            } catch .notFound {
                results.append((item.row.id, item.row.taskType, ParityClass.missingInTaskManager.rawValue, "task \(id) not found"))
                BridgeMetrics.parityFindings.increment(ParityClass.missingInTaskManager.rawValue)
            } catch {
                await noteAPIError(error, context: "parity sample")
            }
        }
        BridgeMetrics.paritySampled.increment(by: results.count)
        try await store.recordParity(results)
    }

    func parityLoop() async throws {
        while !isStopping {
            await sleep(config.bridge.paritySampleIntervalSeconds)
            if !isStopping { try await sampleParity() }
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
        let healthy = !s.unauthorized && s.objectsHealthy && !stalled
        var details: [JSONMember] = [
            JSONMember("status", .string(healthy ? "ok" : "degraded")),
            JSONMember("api_key_accepted", .bool(!s.unauthorized)),
            JSONMember("objects_intact", .bool(s.objectsHealthy)),
            JSONMember("capture_loop_age_seconds", .double((now - s.lastLoopAt).rounded(toPlaces: 3))),
            JSONMember("open_circuits", .array(s.openBreakers.map { .string($0) })),
            JSONMember("legacy_lock_wait_seconds", .double(store.lockWatch.currentWait.rounded(toPlaces: 3))),
        ]
        if let e = s.lastAPIError { details.append(JSONMember("last_api_error", .string(e))) }
        return Health(healthy: healthy, details: .object(details))
    }
}

public struct BridgeStartError: Error, CustomStringConvertible, Sendable {
    public var description: String
    init(_ d: String) { description = d }
}

/// A flag readable without awaiting.
final class Flag: Sendable {
    private let storage = AtomicBool()
    func set() { storage.store(true) }
    func reset() { storage.store(false) }
    var isSet: Bool { storage.load() }
}

import Synchronization

/// Wakes one waiting loop, or lets its next wait return at once.
final class WakeSignal: Sendable {
    private struct State {
        var pending = false
        var waiter: CheckedContinuation<Void, Never>?
        var generation = 0
    }
    private let state = Mutex(State())

    func signal() {
        let w = state.withLock { s -> CheckedContinuation<Void, Never>? in
            if let w = s.waiter {
                s.waiter = nil
                return w
            }
            s.pending = true
            return nil
        }
        w?.resume()
    }

    func wait(timeout: Duration) async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let generation = state.withLock { s -> Int? in
                if s.pending {
                    s.pending = false
                    return nil
                }
                s.generation += 1
                s.waiter = c
                return s.generation
            }
            guard let generation else {
                c.resume()
                return
            }
            Task {
                try? await Task.sleep(for: timeout)
                let w = self.state.withLock { s -> CheckedContinuation<Void, Never>? in
                    guard s.generation == generation, let w = s.waiter else { return nil }
                    s.waiter = nil
                    return w
                }
                w?.resume()
            }
        }
    }
}

/// Wakes every waiter at once (stop), or lets each sleep out its timeout.
final class Broadcast: Sendable {
    private struct State {
        var fired = false
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
        var next = 0
    }
    private let state = Mutex(State())

    func reset() { state.withLock { $0.fired = false } }

    func fire() {
        let ws = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.fired = true
            defer { s.waiters.removeAll() }
            return Array(s.waiters.values)
        }
        for w in ws { w.resume() }
    }

    func wait(timeout: Duration) async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let id = state.withLock { s -> Int? in
                if s.fired { return nil }
                s.next += 1
                s.waiters[s.next] = c
                return s.next
            }
            guard let id else {
                c.resume()
                return
            }
            Task {
                try? await Task.sleep(for: timeout)
                let w = self.state.withLock { s in s.waiters.removeValue(forKey: id) }
                w?.resume()
            }
        }
    }
}

final class AtomicBool: Sendable {
    private let value = Atomic<Bool>(false)
    func store(_ v: Bool) { value.store(v, ordering: .releasing) }
    func load() -> Bool { value.load(ordering: .acquiring) }
}
