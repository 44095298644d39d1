import AsyncAlgorithms
import BridgeConfig
import Foundation
import LegacyQueue
import TaskManagerClient
import TaskManagerModel

/// Shadow (issue 16), one pass per mirror interval or when capture recorded
/// copies: create the recorded copies in TaskManager, read the copies both
/// sides may have finished and record each comparison, expire copies no
/// TaskManager worker finished in time and take them out of TaskManager's
/// queue. The bridge never claims or writes a shadow type's legacy row. The
/// rules of each step live in `ShadowLedger` and `ShadowComparator`.
extension BridgeEngine {
    /// Copies created, and sent copies read, per pass, at most.
    static let shadowBatch = 256
    /// Requests in flight per step.
    static let shadowInFlight = 16

    func shadowLoop(_ ctx: RunContext) async throws {
        let beat = AsyncTimerSequence(
            interval: .milliseconds(Int64(max(config.bridge.mirrorIntervalSeconds, 0.05) * 1000)), clock: .continuous)
        // Idle (no type in shadow, nothing left of an earlier shadow) a beat
        // costs a look at the modes the engine already holds, not three reads.
        var busy = true
        let wakes = merge(ctx.shadowWake.stream.map { true }, beat.map { _ in false })
        for await woken in chain([true].async, wakes) {
            if isStopping { return }
            if woken { busy = true }
            if !busy, await !state.snapshot().modes.values.contains(where: \.makesShadowCopies) { continue }
            await attempt("shadow") {
                let created = try await shadowCreate()
                let compared = try await shadowCompare()
                let cleared = try await shadowClear()
                busy = created || compared || cleared
            }
        }
    }

    /// Recorded copies into TaskManager. A copy's params carry its row's
    /// identity, so a create repeated after a crash dedupes onto the same task.
    /// True if there was anything to create.
    @discardableResult
    func shadowCreate() async throws -> Bool {
        var any = false
        while !isStopping {
            let intents = try await store.shadowIntents(limit: Self.shadowBatch)
            guard !intents.isEmpty else { return any }
            any = true
            var sent: [(ShadowLedger.Key, Int64)] = []
            var refused: [(ShadowLedger.Key, String)] = []
            var failure: TaskManagerError?
            for chunk in intents.chunked(Self.shadowInFlight) {
                let results = await withTaskGroup(of: (ShadowLedger.Intent, Result<Int64, TaskManagerError>).self) {
                    group in
                    for i in chunk {
                        group.addTask {
                            let params = (try? JSONParser.parse(i.paramsJSON)) ?? .object([])
                            do throws(TaskManagerError) {
                                let r = try await self.client.createTask(
                                    type: i.tmType, params: params, priority: i.priority.map(Int.init))
                                return (i, .success(r.id))
                            } catch {
                                return (i, .failure(error))
                            }
                        }
                    }
                    return await group.reduce(into: []) { $0.append($1) }
                }
                for (i, r) in results {
                    switch r {
                    case .success(let id):
                        sent.append((i.key, id))
                        BridgeMetrics.shadow.increment(queueLabel, i.taskType, "created")
                    case .failure(let e) where SendPolicy.isPermanentRefusal(e):
                        refused.append((i.key, e.description))
                        logger.warning(
                            "TaskManager refused a shadow copy; the row stays with legacy workers, uncompared",
                            metadata: ["legacy_id": "\(i.key.legacyID)", "type": "\(i.taskType)", "error": "\(e)"])
                    case .failure(let e): failure = e
                    }
                }
                if failure != nil { break }
            }
            try await store.recordShadowSent(sent, refused: refused)
            if let failure {
                await noteAPIError(failure, context: "create shadow copies")
                return true
            }
            if intents.count < Self.shadowBatch { return true }
        }
        return any
    }

    /// Sent copies: read from TaskManager, compared once both sides are
    /// terminal, expired when TaskManager's side ran past the type's timeout.
    /// True while sent copies remain (looked at now or waiting for their next look).
    @discardableResult
    func shadowCompare() async throws -> Bool {
        let interval = max(config.bridge.mirrorIntervalSeconds, 0.05)
        let pending = try await store.shadowPending(interval: interval, limit: Self.shadowBatch)
        guard !pending.isEmpty else { return try await store.shadowSentCount() > 0 }
        let hasResult = store.schema.columns.contains("result_data")
        let mappings = Dictionary(config.types.map { ($0.legacyType, $0) }, uniquingKeysWith: { a, _ in a })
        var compared: [(ShadowLedger.Key, String, ShadowLedger.Comparison)] = []
        var checked: [ShadowLedger.Key] = []
        var failure: TaskManagerError?
        let now = Date().timeIntervalSince1970
        for chunk in pending.chunked(Self.shadowInFlight) {
            let tasks = await withTaskGroup(of: (ShadowLedger.Pending, Result<TaskInfo, TaskManagerError>).self) {
                group in
                for p in chunk {
                    group.addTask {
                        do throws(TaskManagerError) {
                            return (p, .success(try await self.client.getTask(id: p.taskID)))
                        } catch {
                            return (p, .failure(error))
                        }
                    }
                }
                return await group.reduce(into: []) { $0.append($1) }
            }
            for (p, r) in tasks {
                let mapping = mappings[p.taskType]
                let comparator = ShadowComparator(ignore: mapping?.shadowIgnore ?? [])
                let timeout = mapping?.shadowTimeoutSeconds ?? 3_600
                var task: TaskInfo?
                switch r {
                case .success(let t): task = t
                case .failure(.notFound): task = nil  // the copy is gone (a wiped server): expires in time
                case .failure(let e):
                    failure = e
                    continue
                }
                if let c = comparator.compare(
                    legacyStatus: p.legacyStatus, legacyResult: p.legacyResult, hasLegacyResult: hasResult,
                    tmStatus: task?.status, tmResult: task?.result)
                {
                    compared.append((p.key, p.taskType, c))
                } else if now - p.sentAt > timeout && !(task?.status?.isTerminal ?? false) {
                    compared.append(
                        (
                            p.key, p.taskType,
                            ShadowLedger.Comparison(
                                outcome: .expired, legacyStatus: p.legacyStatus, legacyResult: p.legacyResult,
                                tmStatus: task?.rawStatus, tmResult: nil, fieldsJSON: nil)
                        ))
                } else {
                    checked.append(p.key)
                }
            }
            if failure != nil { break }
        }
        for (type, outcome) in try await store.recordShadowPass(compared: compared, checked: checked) {
            BridgeMetrics.shadow.increment(queueLabel, type, outcome.rawValue)
        }
        if let failure { await noteAPIError(failure, context: "read shadow copies") }
        return true
    }

    /// Expired copies still pending in TaskManager are taken out of its queue:
    /// TaskManager has no cancel, so the bridge claims the type's oldest task
    /// (an expired copy is older than any live one) and fails it, until
    /// TaskManager stops offering it again. A claimed task that is not an
    /// expired copy is left to its lease (it returns to the queue).
    @discardableResult
    func shadowClear() async throws -> Bool {
        let uncleared = try await store.shadowUncleared(limit: 64)
        guard !uncleared.isEmpty else { return false }
        var cleared: [Int64] = []
        var open: [String: Set<Int64>] = [:]
        for u in uncleared {
            let t = try await readTask(u.taskID)
            if let t, t.status == .pending { open[u.tmType, default: []].insert(u.taskID) } else { cleared.append(u.taskID) }
        }
        let worker = config.bridge.id + "-shadow"
        for (tmType, ids) in open {
            guard let typeID = try? await client.getTaskType(name: tmType).id else { continue }
            var left = ids
            // Each fail may put the copy back (attempts < MAX_TASK_ATTEMPTS).
            for _ in 0..<(ids.count * 5) where !left.isEmpty {
                guard let claimed = try await claim(worker: worker, typeID: typeID) else { break }
                guard left.contains(claimed.id) else {
                    logger.notice(
                        "clearing expired shadow copies claimed a task that is not one; it returns when its lease ends",
                        metadata: ["task_id": "\(claimed.id)", "tm_type": "\(tmType)"])
                    break
                }
                // `pending (retry)`: TaskManager offers it again; claimed again below.
                let r = try await complete(claimed.id, worker: worker)
                if !r.hasPrefix(TaskStatus.pending.rawValue) {
                    left.remove(claimed.id)
                    cleared.append(claimed.id)
                }
            }
        }
        try await store.recordShadowCleared(cleared)
        return true
    }

    private func readTask(_ id: Int64) async throws -> TaskInfo? {
        do {
            return try await client.getTask(id: id)
        } catch .notFound {
            return nil
        } catch {
            await noteAPIError(error, context: "read an expired shadow copy")
            throw error
        }
    }

    private func claim(worker: String, typeID: Int64) async throws -> ClaimedTask? {
        do {
            return try await client.claimTask(workerID: worker, taskTypeID: typeID, policy: .fifo)
        } catch {
            await noteAPIError(error, context: "claim an expired shadow copy")
            throw error
        }
    }

    private func complete(_ id: Int64, worker: String) async throws -> String {
        do {
            return try await client.completeTask(
                id: id, workerID: worker, success: false,
                error: "shadow copy expired: no TaskManager worker finished it within shadow_timeout (taskbridge)"
            ).status
        } catch {
            await noteAPIError(error, context: "fail an expired shadow copy")
            throw error
        }
    }
}

extension Array {
    func chunked(_ size: Int) -> [ArraySlice<Element>] {
        stride(from: 0, to: count, by: size).map { self[$0..<Swift.min($0 + size, count)] }
    }
}
