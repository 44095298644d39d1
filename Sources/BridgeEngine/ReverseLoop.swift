import AsyncAlgorithms
import BridgeConfig
import Foundation
import LegacyQueue
import TaskManagerClient
import TaskManagerModel

/// Reverse mode (TaskManager producers, legacy workers), one cycle per mirror
/// interval: copy the outcomes of finished rows into the reverse ledger,
/// report them to TaskManager, find tasks the bridge holds without a row (a
/// crash between claim and insert), then claim new tasks up to the prefetch.
/// The rules of each step live in `ReverseLedger`.
extension BridgeEngine {
    /// How often tasks held by the bridge are listed to find one without a row.
    static let adoptionInterval = 30.0

    func reverseLoop(_ ctx: RunContext) async throws {
        let beat = AsyncTimerSequence(
            interval: .milliseconds(Int64(config.bridge.mirrorIntervalSeconds * 1000)), clock: .continuous)
        var lastAdoption = 0.0
        // Idle (no reverse type, no entry in flight) a beat reads nothing.
        // Whether entries are in flight is read from the ledger at the end of
        // each cycle, after its claims: a row this cycle inserted, or an
        // outcome whose retry is due later, still needs its beats when a
        // cutover to `off` takes the last type out of reverse. A cycle that
        // failed part-way counts as busy.
        var busy = true
        for await _ in chain([()].async, beat.map { _ in () }) {
            if isStopping { return }
            let modes = await state.snapshot().modes
            let types = config.types.filter { modes[$0.legacyType] == .reverse }
            if types.isEmpty && !busy { continue }
            busy = true
            await attempt("reverse") {
                // Outcomes first: a task failed back to `pending` is claimed
                // again below only after its previous attempt is recorded.
                try await reverseReport()
                if !types.isEmpty {
                    let now = Date().timeIntervalSince1970
                    if now - lastAdoption >= Self.adoptionInterval {
                        if try await reverseAdopt(types) { lastAdoption = now }
                    }
                    try await reverseClaim(types)
                }
                busy = try await store.reverseInFlight()
            }
        }
    }

    /// Legacy outcomes into the ledger, then to TaskManager.
    func reverseReport() async throws {
        let collected = try await store.reverseCollect()
        if !collected.lost.isEmpty {
            logger.warning(
                "reverse rows vanished or were replaced (task_queue recreated?); their tasks get new rows",
                metadata: ["tasks": "\(collected.lost.map(String.init).joined(separator: " "))"])
        }
        let due = try await store.reverseDue(limit: 256)
        guard !due.isEmpty else { return }
        await withTaskGroup(of: Void.self) { group in
            for outcome in due { group.addTask { await self.reverseComplete(outcome) } }
        }
    }

    /// One completion. TaskManager answers 400 "not in claimed state" when it
    /// already has it (the bridge died after its call and before its write):
    /// the task is read to tell that apart from a task someone else finished.
    func reverseComplete(_ o: ReverseLedger.Outcome) async {
        let result: JSONValue? = o.resultData.map { text in (try? JSONParser.parse(text)) ?? .string(text) }
        do {
            let r = try await client.completeTask(
                id: o.taskID, workerID: config.bridge.id, success: o.success, result: o.success ? result : nil,
                error: o.error)
            try? await store.reverseCompleted(entryID: o.entryID, tmStatus: r.status)
            BridgeMetrics.reverseCompleted.increment(queueLabel, o.taskType, o.success ? "completed" : "failed")
            if await state.recordAPISuccess() { try? await store.resetBackoff() }
        } catch .validation(let message, _) where message.contains("not in claimed state") {
            await reverseSettle(o, refusal: message)
        } catch .forbidden(let message) {
            await reverseConflict(o, reason: "reclaimed", detail: "claimed by another worker: \(message)")
        } catch .notFound(let message) {
            await reverseConflict(o, reason: "gone", detail: "task \(o.taskID) not found: \(message)")
        } catch {
            await noteAPIError(error, context: "complete task \(o.taskID)")
            let next = Date().timeIntervalSince1970 + backoff(attempts: 1, base: 1, cap: 60)
            try? await store.reverseRetry(entryID: o.entryID, error: error.description, nextAttemptAt: next)
        }
    }

    /// After a "not in claimed state": the bridge's own completion landed
    /// earlier when the task shows its outcome (or went back to pending for
    /// another attempt after a failure); anything else is a conflict.
    func reverseSettle(_ o: ReverseLedger.Outcome, refusal: String) async {
        do {
            let task = try await client.getTask(id: o.taskID)
            let ours = task.claimedBy == nil || task.claimedBy == config.bridge.id
            let landed =
                (o.success && task.rawStatus == "completed")
                || (!o.success && (task.rawStatus == "failed" || task.rawStatus == "pending"))
            if landed && ours {
                try? await store.reverseCompleted(entryID: o.entryID, tmStatus: task.rawStatus)
                BridgeMetrics.reverseCompleted.increment(queueLabel, o.taskType, o.success ? "completed" : "failed")
            } else {
                await reverseConflict(
                    o, reason: "reclaimed",
                    detail: "TaskManager refused the completion (\(refusal)); the task is \(task.rawStatus)"
                        + (task.claimedBy.map { " by \($0)" } ?? ""))
            }
        } catch {
            await noteAPIError(error, context: "read task \(o.taskID)")
            let next = Date().timeIntervalSince1970 + backoff(attempts: 1, base: 1, cap: 60)
            try? await store.reverseRetry(entryID: o.entryID, error: error.description, nextAttemptAt: next)
        }
    }

    func reverseConflict(_ o: ReverseLedger.Outcome, reason: String, detail: String) async {
        logger.warning(
            "reverse completion refused for good; the legacy row ran, TaskManager will not take its outcome",
            metadata: [
                "task_id": "\(o.taskID)", "legacy_id": "\(o.legacyID)", "type": "\(o.taskType)",
                "detail": "\(LogSafe.escape(detail))",
            ])
        BridgeMetrics.reverseConflicts.increment(queueLabel, o.taskType, reason)
        try? await store.reverseConflict(entryID: o.entryID, detail: detail)
    }

    /// Tasks TaskManager shows claimed by this bridge with no live entry: the
    /// bridge died between a claim and its insert. Each gets its row now.
    /// Returns false when a listing failed (tried again next cycle).
    func reverseAdopt(_ types: [TypeMapping]) async throws -> Bool {
        let held = try await store.reverseHeldTasks()
        for m in types {
            var offset = 0
            while !isStopping {
                let page: [TaskInfo]
                do {
                    page = try await client.listTasks(statuses: ["claimed"], type: m.name, limit: 200, offset: offset)
                } catch {
                    await noteAPIError(error, context: "list claimed \(m.name) tasks")
                    return false
                }
                for t in page where t.claimedBy == config.bridge.id && !held.contains(t.id) {
                    do {
                        let full = try await client.getTask(id: t.id)
                        guard full.rawStatus == "claimed", full.claimedBy == config.bridge.id else { continue }
                        let outcome = try await store.reverseInsert(
                            .init(taskID: full.id, params: full.params ?? .null, priority: full.priority),
                            legacyType: m.legacyType, tmType: m.name)
                        if case .inserted(let id) = outcome {
                            BridgeMetrics.reverseInserted.increment(queueLabel, m.legacyType)
                            logger.notice(
                                "task held by the bridge had no legacy row; inserted it",
                                metadata: ["task_id": "\(full.id)", "legacy_id": "\(id)", "type": "\(m.legacyType)"])
                        }
                    } catch let e as TaskManagerError {
                        await noteAPIError(e, context: "read task \(t.id)")
                        return false
                    }
                }
                if page.count < 200 { break }
                offset += page.count
            }
        }
        return true
    }

    /// Claims tasks of each reverse type while fewer than the prefetch of its
    /// rows wait for a legacy worker.
    func reverseClaim(_ types: [TypeMapping]) async throws {
        for m in types {
            guard let typeID = await state.typeID(m.name) else { continue }
            var waiting = try await store.reverseWaiting(taskType: m.legacyType)
            while waiting < config.bridge.reversePrefetch && !isStopping {
                let claimed: ClaimedTask?
                do {
                    claimed = try await client.claimTask(workerID: config.bridge.id, taskTypeID: typeID, policy: .fifo)
                } catch {
                    await noteAPIError(error, context: "claim \(m.name)")
                    return
                }
                guard let task = claimed else { break }
                if await state.recordAPISuccess() { try? await store.resetBackoff() }
                switch try await store.reverseInsert(
                    .init(taskID: task.id, params: task.params, priority: task.priority), legacyType: m.legacyType,
                    tmType: m.name)
                {
                case .inserted:
                    BridgeMetrics.reverseInserted.increment(queueLabel, m.legacyType)
                    waiting += 1
                case .recognised(let legacyID):
                    BridgeMetrics.reverseRecognised.increment(queueLabel, m.legacyType)
                    logger.info(
                        "claimed a task the bridge already holds a row for (its lease expired); nothing inserted",
                        metadata: ["task_id": "\(task.id)", "legacy_id": "\(legacyID)", "type": "\(m.legacyType)"])
                }
            }
        }
    }
}
