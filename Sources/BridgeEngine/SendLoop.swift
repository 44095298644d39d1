import Foundation
import LegacyQueue
import Synchronization
import TaskManagerClient
import TaskManagerModel

/// Send: due intents become TaskManager tasks. A continuous pipeline of up to
/// `max_in_flight` creates, driven by one event stream (new intents, finished
/// sends, the next due time); outcomes are recorded in batches. Intents being
/// sent are still `intent` in the ledger, so a crash re-sends them and
/// TaskManager's dedupe returns the same task.
extension BridgeEngine {
    /// The longest a finished create waits for others to be recorded with it.
    static let recordDelay = 0.005

    /// A finished create: what to record, and whether its task is already
    /// terminal (a collapse onto a finished task: the mirror takes it at once).
    /// Nil: cancelled at stop, nothing to record.
    typealias Sent = (record: LegacyQueueStore.SendRecord, terminal: Bool)

    enum SendEvent: Sendable {
        case wake
        case sent(Int64, Sent?)
    }

    func sendLoop(_ ctx: RunContext) async throws {
        let capacity = config.bridge.maxInFlight
        let (events, events_) = AsyncStream.makeStream(of: SendEvent.self)
        let alarm = Alarm { events_.yield(.wake) }
        defer {
            events_.finish()
            alarm.cancel()
        }
        /// The next look at the ledger when nothing else will wake the loop.
        func wake(after seconds: Double) { alarm.wake(after: seconds) }
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask {
                for await _ in ctx.sendWake.stream { events_.yield(.wake) }
            }
            var inAir = Set<Int64>()
            var running = 0
            var outcomes: [Sent] = []
            var recordedPending: [Int64] = []
            var nextDue: (value: Double, readAt: Double) = (0, 0)
            var firstPendingAt: Double?
            func flush() async throws {
                try await record(&outcomes, ctx: ctx)
                // Only now may these rows be picked again: until the outcome
                // is in the ledger they still read `intent`.
                for id in recordedPending { inAir.remove(id) }
                recordedPending.removeAll()
            }
            events_.yield(.wake)
            for await event in events {
                switch event {
                case .wake:
                    break
                case .sent(let id, let sent):
                    running -= 1
                    if let sent { outcomes.append(sent) }
                    recordedPending.append(id)
                    // Outcomes are recorded together: when nothing else is in the
                    // air, when half the cap is waiting, or `recordDelay` after
                    // the first one. A write per finished create queued every
                    // row behind its neighbours' transactions (and the
                    // producers' write lock): at 500 rows/s, 70 ms from capture to sent.
                    if running > 0 && recordedPending.count < max(1, capacity / 2) {
                        let now = Date().timeIntervalSince1970
                        if firstPendingAt == nil { firstPendingAt = now }
                        if now - firstPendingAt! < Self.recordDelay {
                            wake(after: Self.recordDelay)
                            continue
                        }
                    }
                    try await flush()
                    firstPendingAt = nil
                }
                if let first = firstPendingAt, Date().timeIntervalSince1970 - first >= Self.recordDelay {
                    try await flush()
                    firstPendingAt = nil
                }
                if isStopping {
                    if running == 0 {
                        try await flush()
                        group.cancelAll()
                        return
                    }
                    continue
                }
                if running < capacity {
                    for e in try await dueBatch(limit: capacity - running, excluding: inAir) {
                        inAir.insert(e.legacyID)
                        running += 1
                        group.addTask {
                            let sent = await self.send(e)
                            events_.yield(.sent(e.legacyID, sent))
                        }
                    }
                }
                if running == 0 {
                    try await flush()
                    firstPendingAt = nil
                    // Idle: until the next intent's run_after_utc, backoff or
                    // pause passes, at most a second.
                    // The next due time is read at most every 100 ms: at 500
                    // rows/s the loop is idle after every row.
                    let now = Date().timeIntervalSince1970
                    if now - nextDue.readAt >= 0.1 {
                        nextDue = (try await store.nextIntentDue() ?? (now + 1), now)
                    }
                    // A due time already passed belongs to intents this loop just
                    // could not send (breaker, registration): look again in 100 ms.
                    let due = nextDue.value > now ? nextDue.value : now + 0.1
                    wake(after: min(1, max(due, await state.pausedUntil()) - now))
                }
            }
            // Cancelled (the stop grace ran out): record what did finish, outside
            // the cancelled task so the write is not refused.
            let finished = outcomes
            if !finished.isEmpty {
                try await Task {
                    var rest = finished
                    try await self.record(&rest, ctx: ctx)
                }.value
            }
            group.cancelAll()
        }
    }

    /// Due intents that may be sent now: not paused, type registered, its
    /// breaker closed, not already in the air.
    func dueBatch(limit: Int, excluding: Set<Int64>) async throws -> [LedgerEntry] {
        guard limit > 0 else { return [] }
        let now = Date().timeIntervalSince1970
        // One hop to the state actor, not four: this runs after every send.
        guard let (blocked, probes, registered, modes) = await state.sendGate(now: now) else { return [] }
        let candidates = try await store.dueIntents(now: now, limit: limit + excluding.count)
        // A type whose breaker is half-open sends one row: the probe.
        var probing = probes
        var batch: [LedgerEntry] = []
        for c in candidates where batch.count < limit {
            guard !excluding.contains(c.legacyID), !blocked.contains(c.tmType), registered.contains(c.tmType) else {
                continue
            }
            if probes.contains(c.tmType) {
                guard probing.remove(c.tmType) != nil else { continue }
            }
            batch.append(c)
        }
        for type in probing { await state.probeUnused(type, now: now) }
        for e in batch where modes[e.taskType] == .retired {
            logger.warning(
                "row arrived for a retired type; forwarding it",
                metadata: ["type": "\(e.taskType)", "id": "\(e.legacyID)"])
            BridgeMetrics.retiredRows.increment(queueLabel, e.taskType)
        }
        return batch
    }

    /// Records a batch in one transaction. Finished tasks are the mirror's:
    /// a send never waits for a GET (issue 8, item 6).
    func record(_ outcomes: inout [Sent], ctx: RunContext?) async throws {
        guard !outcomes.isEmpty else { return }
        let batch = outcomes
        outcomes.removeAll(keepingCapacity: true)
        let r = try await store.recordSends(batch.map(\.record))
        noteQuarantines(r.quarantines)
        BridgeMetrics.forwarded.increment(queueLabel, by: r.sent)
        BridgeMetrics.collapsed.increment(queueLabel, by: r.collapsed)
        if batch.contains(where: \.terminal) { ctx?.mirrorWake.signal() }
    }

    /// One wave (for `driveOnce`): send every due intent that fits, record.
    func sendWave() async throws -> Int {
        let batch = try await dueBatch(limit: config.bridge.maxInFlight, excluding: [])
        guard !batch.isEmpty else { return 0 }
        var outcomes = await withTaskGroup(of: Sent?.self) { group in
            for e in batch { group.addTask { await self.send(e) } }
            var out: [Sent] = []
            for await o in group { if let o { out.append(o) } }
            return out
        }
        try await record(&outcomes, ctx: nil)
        return batch.count
    }

    /// One create, with `SendPolicy` deciding what a failure means.
    func send(_ e: LedgerEntry) async -> Sent? {
        guard let json = e.paramsJSON, let params = try? JSONParser.parse(json) else {
            return (
                .refused(
                    legacyID: e.legacyID, taskType: e.taskType, code: "ledger_corrupt",
                    detail: "ledger params are unreadable"),
                false
            )
        }
        var reRegistered = false
        while true {
            let startedAt = Date().timeIntervalSince1970
            do {
                let r = try await client.createTask(type: e.tmType, params: params, priority: e.priority.map(Int.init))
                if case .closed(let outage)? = await state.breakerSuccess(e.tmType, now: Date().timeIntervalSince1970) {
                    logger.notice(
                        "circuit closed: TaskManager answers again, traffic flows",
                        metadata: ["name": "\(e.tmType)", "outage_seconds": "\(outage.rounded(toPlaces: 1))"])
                }
                await state.recordSendSuccess(e.tmType, at: Date().timeIntervalSince1970)
                if await state.recordAPISuccess() {
                    // The API is back: rows waiting out a backoff go now.
                    try? await store.resetBackoff()
                    context.withLock { $0 }?.sendWake.signal()
                }
                let terminal = TaskStatus(rawValue: r.status)?.isTerminal ?? false
                return (
                    .sent(legacyID: e.legacyID, taskID: r.id, status: r.status, deduplicated: r.deduplicated), terminal
                )
            } catch {
                let now = Date().timeIntervalSince1970
                // Stopping: the intent stays as it is and is sent again on the next start.
                if Task.isCancelled { return nil }
                await noteAPIError(error, context: "create task for row \(e.legacyID)")
                let context = SendPolicy.Context(
                    entry: e, now: now, typeLastSuccessAt: await state.lastSendSuccess(e.tmType),
                    reRegistered: reRegistered)
                switch SendPolicy.decide(error, context, sendSettings) {
                case .reRegister:
                    reRegistered = true
                    if let m = config.types.first(where: { $0.name == e.tmType }),
                        (try? await client.registerTaskType(
                            name: m.name, version: m.version, paramSchema: m.paramSchema)) != nil
                    {
                        continue
                    }
                    return (
                        .retry(
                            legacyID: e.legacyID, error: error.description,
                            nextAttemptAt: now + backoff(attempts: e.attempts)), false
                    )
                case .quarantine(let code, let detail):
                    return (.refused(legacyID: e.legacyID, taskType: e.taskType, code: code, detail: detail), false)
                case .retry(let delay, let pauseAll, let breaker, let streak, let streakStart):
                    if let pauseAll { await state.pause(until: now + pauseAll) }
                    if breaker, await state.breakerFailure(e.tmType, startedAt: startedAt, now: now) == .opened {
                        logger.warning(
                            "circuit opened for type after repeated failures; probing every few seconds",
                            metadata: ["name": "\(e.tmType)", "error": "\(error)"])
                    }
                    let wait = pauseAll == nil ? delay * Double.random(in: 0.8...1.2) : delay
                    return (
                        .retry(
                            legacyID: e.legacyID, error: error.description, nextAttemptAt: now + wait,
                            errorStreak: streak,
                            streakStartedAt: streakStart), false
                    )
                }
            }
        }
    }

    var sendSettings: SendPolicy.Settings {
        SendPolicy.Settings(
            persistentAttempts: Int64(config.bridge.persistentErrorAttempts),
            persistentSeconds: config.bridge.persistentErrorSeconds)
    }
}

/// The next wake-up of an event loop: the earliest one asked for. A wake-up
/// already due as early is kept: a new sleeping task per event (and the
/// cancellation of the one before) was a timer registration and two thread
/// wake-ups per row.
final class Alarm: Sendable {
    private let armed = Mutex<(at: Double, task: Task<Void, Never>)?>(nil)
    private let fire: @Sendable () -> Void

    init(fire: @escaping @Sendable () -> Void) { self.fire = fire }

    /// At least 5 ms from now.
    func wake(after seconds: Double) {
        let delay = max(0.005, seconds)
        let at = Date().timeIntervalSince1970 + delay
        armed.withLock { armed in
            if let armed, armed.at <= at + 0.001 { return }
            armed?.task.cancel()
            let task = Task { [self] in
                try? await Task.sleep(for: .milliseconds(Int64(delay * 1000)))
                if Task.isCancelled { return }
                self.armed.withLock { if $0?.at == at { $0 = nil } }
                fire()
            }
            armed = (at, task)
        }
    }

    func cancel() {
        armed.withLock {
            $0?.task.cancel()
            $0 = nil
        }
    }
}
