import AsyncAlgorithms
import BridgeConfig
import Foundation
import LegacyQueue
import TaskManagerModel

/// Capture: change rows and the backlog become ledger entries. The pure work
/// (parse, validate, encode, hash) happens between a read and a short write
/// transaction, never inside the write lock (invariant 5).
extension BridgeEngine {
    func refreshModes() async throws {
        let raw = try await store.modeStates()
        var modes: [String: BridgeMode] = [:]
        var percents: [String: Int] = [:]
        for (k, v) in raw {
            let mode = BridgeMode(rawValue: v.mode) ?? .off
            modes[k] = mode
            percents[k] = mode.takesPercent ? v.percent : 100
            BridgeMetrics.forwardPercent.set(mode.claimsRows ? Double(percents[k]!) : 0, queueLabel, k)
        }
        let entered = await state.setModes(modes, percents: percents)
        for t in entered {
            logger.info(
                "type entered forward mode or raised its share; claiming its backlog", metadata: ["type": "\(t)"])
        }
    }

    /// Wakes on every commit (the watcher thread) and at least every 20 poll
    /// intervals (a mode change with no insert after it; the watcher yields
    /// that too).
    func captureLoop(_ ctx: RunContext) async throws {
        var modesReadAt = 0.0
        for await _ in ctx.watcher.changes {
            if isStopping { return }
            let done = await attempt("capture") {
                // At most once per poll interval: at 500 rows/s a read per wake-up
                // was a fifth of the bridge's work, and a mode change still
                // applies within one poll interval (the insert trigger reads the
                // mode table itself, at once).
                let now = Date().timeIntervalSince1970
                if ctx.watcher.takeModesMoved() || now - modesReadAt >= config.bridge.pollIntervalSeconds {
                    modesReadAt = now
                    try await refreshModes()
                }
                if try await captureOnce() {
                    ctx.watcher.noteActivity()
                    ctx.sendWake.signal()
                }
            }
            // The watcher wakes capture only for commits that reach what
            // capture reads: a failed pass asks for the next one itself.
            if !done { ctx.watcher.poke() }
            await state.tick()
        }
    }

    /// Asks capture for a backlog sweep now: its next pass would otherwise
    /// wait for a commit that reaches the change log.
    func requestBacklogSweep() async {
        await state.markBacklog(true)
        context.withLock { $0 }?.watcher.poke()
    }

    /// One pass: change rows, then the backlog. True if anything was captured.
    func captureOnce() async throws -> Bool {
        var any = false
        let modes = await state.modes
        // Bounded: a row a producer keeps rewriting stays stale and comes back
        // at the next wake-up instead of holding this pass.
        var more = false
        defer {
            // Left for the next pass, which no commit may announce.
            if more { context.withLock { $0 }?.watcher.poke() }
        }
        for _ in 0..<64 {
            more = false
            guard !isStopping, let batch = try await store.readChanges(limit: 500) else { break }
            var decisions: [Int64: LegacyQueueStore.CaptureInput] = [:]
            for row in batch.toDecide {
                decisions[row.id] = policy.decide(row, mode: modes[row.taskType], origin: batch.origin).input
            }
            let r = try await store.applyChanges(batch, decisions: decisions)
            if r.processed > 0 { any = true }
            if r.requeued > 0 { await state.markBacklog(true) }
            count(r)
            more = r.remaining
            if !r.remaining { break }
        }
        if await state.backlogPending {
            if try await claimBacklog(modes: modes) { any = true }
        }
        return any
    }

    /// Queued rows of forward types, claimed with the legacy protocol, and the
    /// dry-run verdicts of queued rows of dry-run types.
    func claimBacklog(modes: [String: BridgeMode]) async throws -> Bool {
        var any = false
        let forward = modes.filter { $0.value.claimsRows }.map(\.key).sorted()
        let request = await state.backlogRequests
        var remaining = !forward.isEmpty
        while remaining && !isStopping {
            let origin = try await store.origin()
            let rows = try await store.readBacklog(types: forward, limit: config.bridge.batchSize)
            var decisions: [Int64: LegacyQueueStore.CaptureInput] = [:]
            for row in rows { decisions[row.id] = policy.decideClaimed(row, origin: origin).input }
            let r = try await store.claimBacklog(rows, decisions: decisions, origin: origin)
            if r.remaining {
                // A generation began between the read and the claim: read again.
                count(r)
                continue
            }
            if r.processed > 0 {
                any = true
                logger.debug("claimed backlog rows", metadata: ["count": "\(r.processed)"])
            }
            count(r)
            remaining = rows.count == config.bridge.batchSize
        }
        let dry = modes.filter { $0.value == .dryRun }.map(\.key).sorted()
        if !dry.isEmpty {
            var verdicts: [(Int64, String, String, String?)] = []
            for row in try await store.dryRunBacklog(types: dry, limit: 1000) {
                if case .dryRun(let v, let reason) = policy.decide(row, mode: .dryRun, origin: nil) {
                    verdicts.append((row.id, row.taskType, v, reason))
                    BridgeMetrics.dryRun.increment(queueLabel, row.taskType, v)
                }
            }
            try await store.recordDryRun(verdicts)
        }
        if !remaining { await state.backlogSwept(since: request) }
        return any
    }

    func count(_ r: LegacyQueueStore.CaptureResult) {
        if let g = r.newGeneration {
            logger.warning(
                "task_queue is not the table the ledger was made for (recreated or restored); new ledger generation",
                metadata: ["generation": "\(g.generation)", "archived_entries": "\(g.archived)"])
        }
        for (type, n) in r.intentsByType { BridgeMetrics.captured.increment(queueLabel, type, by: n) }
        if !r.shadowsByType.isEmpty { context.withLock { $0 }?.shadowWake.signal() }
        for (key, n) in r.verdicts { BridgeMetrics.dryRun.increment(queueLabel, key.taskType, key.verdict, by: n) }
        noteQuarantines(r.quarantines)
        if r.archived > 0 {
            logger.notice(
                "ledger entries archived: their rows were re-queued or replaced", metadata: ["count": "\(r.archived)"])
        }
    }

    /// Every quarantine is logged (warning) and counted, wherever it happened:
    /// legacy id, type and reason, and only a short excerpt of the detail,
    /// which may quote the row's params.
    func noteQuarantines(_ events: [LegacyQueueStore.QuarantineEvent]) {
        for q in events {
            let excerpt = q.detail.count > 160 ? String(q.detail.prefix(160)) + "..." : q.detail
            logger.warning(
                "row quarantined",
                metadata: [
                    "legacy_id": "\(q.legacyID)", "type": "\(q.taskType)", "reason": "\(q.code)",
                    "detail": "\(LogSafe.escape(excerpt))",
                ])
            BridgeMetrics.quarantined.increment(queueLabel, q.taskType, q.code)
        }
    }
}
