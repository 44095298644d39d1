import AsyncAlgorithms
import Foundation
import LegacyQueue
import TaskManagerClient

/// Reconcile: the `_taskbridge_*` objects, the table's continuity, orphan
/// rows, the backlog sweep, and type registration.
extension BridgeEngine {
    func reconcileObjects() async throws {
        if let previous = try await store.installedBridgeID(), previous != config.bridge.id {
            let held = try await store.rowsHeldInFlight()
            if held > 0 {
                throw BridgeStartError(
                    """
                    [bridge] id changed from \"\(previous)\" to \"\(config.bridge.id)\" while \(held) row(s) are \
                    claimed under the old id; 
                    """
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
            logger.warning(
                "_taskbridge_* objects were dropped or altered; reinstalling",
                metadata: ["missing": "\(missing.joined(separator: ","))", "altered": "\(altered)"])
            BridgeMetrics.objectsRepaired.increment(queueLabel)
            try await store.install()
            // A recreated mode table is empty: give every type its configured
            // starting mode again rather than leaving forward types `off`.
            for m in config.types
            where try await store.seedMode(
                taskType: m.legacyType, mode: m.mode.rawValue, shareBy: m.canaryShare, host: host)
            {
                logger.error(
                    "mode table was lost; type reset to its configured mode (check the audit trail)",
                    metadata: ["type": "\(m.legacyType)", "mode": "\(m.mode.rawValue)"])
            }
            await state.setObjectsHealthy(true)
            // Rows inserted while a trigger was missing were not claimed at
            // capture: sweep for them now, not at the next full reconcile.
            await requestBacklogSweep()
            context.withLock { $0 }?.sendWake.signal()
        }
        // Dropped triggers often mean a recreated table (PrismQ's
        // QueueDatabase drops task_queue with its triggers): checked every
        // time, before any backlog sweep can meet the new rows.
        if let g = try await store.checkContinuity() {
            logger.warning(
                "task_queue is not the table the ledger was made for (recreated or restored); new ledger generation",
                metadata: ["generation": "\(g.generation)", "archived_entries": "\(g.archived)"])
            await requestBacklogSweep()
        }
    }

    /// Objects and continuity every ten seconds; orphans and the backlog
    /// every `reconcile_interval_seconds`.
    func reconcileLoop(_ ctx: RunContext) async throws {
        var lastFull = 0.0
        let ticks = AsyncTimerSequence(interval: .seconds(10), clock: .continuous).map { _ in () }
        // A first pass at start, then every ten seconds, and at once when the
        // schema changed (a recreated table lost its triggers: until they are
        // back, a forward row arrives as a plain queued row).
        for await _ in chain([()].async, merge(ticks, ctx.watcher.schemaChanges.stream)) {
            if isStopping { return }
            await attempt("reconcile") {
                try await reconcileObjects()
                // Who executes each type's rows (a canary's split), every ten seconds.
                for s in try await store.statusReport() where config.mapping(forLegacyType: s.taskType) != nil {
                    BridgeMetrics.rows.set(Double(s.forwarded), queueLabel, s.taskType, "bridge")
                    BridgeMetrics.rows.set(Double(s.leftToLegacy), queueLabel, s.taskType, "legacy")
                }
                let now = Date().timeIntervalSince1970
                if now - lastFull >= config.bridge.reconcileIntervalSeconds {
                    lastFull = now
                    try await adoptOrphans()
                    await requestBacklogSweep()
                    ctx.sendWake.signal()
                }
            }
        }
    }

    /// Another file was put at the path (a restore by `mv`): reopen on it,
    /// say so once, and go on as a new generation against what it holds.
    /// Rows the restore dropped keep their tasks, shown by `verify` as tasks
    /// without a row; ids the old file gave out after the copy was taken may
    /// come again, and the new origin keeps their rows apart.
    func replacementLoop(_ ctx: RunContext) async throws {
        var warnedAbout: FileIdentity?
        for await _ in ctx.watcher.replacements.stream {
            if isStopping { return }
            guard let change = store.replacedFile() else { continue }
            await attempt("reopen") {
                // The replaced file cannot be read reliably any more: its old
                // connections share the WAL at the path with the new file's
                // writers. Rows it had and the restored copy lacks are found
                // by verify from their tasks' origins.
                let began: (generation: Int64, archived: Int)?
                do {
                    began = try store.reopen()
                } catch LegacyQueueError.restoreIncomplete(let path, let leftovers) {
                    // Retried at every look at the file until they are gone;
                    // said once per file put at the path.
                    if warnedAbout != change.now {
                        warnedAbout = change.now
                        logger.warning(
                            """
                            another file is at the legacy path, but the replaced file's WAL and index are still \
                            beside it; the bridge waits for them to be removed before it opens the new file
                            """,
                            metadata: [
                                "database": "\(path)", "leftovers": "\(leftovers.joined(separator: ", "))",
                                "was": "\(change.was)", "now": "\(change.now)",
                            ])
                    }
                    return
                }
                try await reconcileObjects()
                var g = began
                if g == nil { g = try await store.beginNewGeneration() }
                logger.warning(
                    "the legacy file was replaced under the bridge (a restore?); reopened it as a new generation",
                    metadata: [
                        "database": "\(store.path)", "was": "\(change.was)", "now": "\(change.now)",
                        "generation": "\(g?.generation ?? 0)", "archived_entries": "\(g?.archived ?? 0)",
                    ])
                BridgeMetrics.fileReplaced.increment(queueLabel)
                await requestBacklogSweep()
                ctx.watcher.noteActivity()
                ctx.sendWake.signal()
            }
        }
    }

    /// Rows the bridge holds without a ledger entry get one, paged by id so
    /// that rows that cannot be adopted are read once per sweep, not again
    /// and again (issue 8, item 3).
    func adoptOrphans() async throws {
        let modes = await state.modes
        var after: Int64 = 0
        var adopted = 0
        let origin = try await store.origin()
        while !isStopping {
            let rows = try await store.readOrphans(afterID: after, limit: 500)
            guard let last = rows.last else { break }
            after = last.id
            var decisions: [Int64: LegacyQueueStore.CaptureInput] = [:]
            for row in rows { decisions[row.id] = policy.decide(row, mode: modes[row.taskType], origin: origin).input }
            let r = try await store.adopt(rows, decisions: decisions, origin: origin)
            adopted += r.intents + r.quarantined
            count(r)
            if rows.count < 500 { break }
        }
        if adopted > 0 {
            logger.notice("adopted rows the bridge held without a ledger entry", metadata: ["count": "\(adopted)"])
        }
    }

    // MARK: - Registration

    func registerLoop(_ ctx: RunContext) async throws {
        var attempt: Int64 = 0
        while !isStopping {
            var pending = false
            for m in config.types where !(await state.isRegistered(m.name)) {
                do {
                    let r = try await client.registerTaskType(
                        name: m.name, version: m.version, paramSchema: m.paramSchema)
                    await state.markRegistered(m.name, id: r.id)
                    if await state.recordAPISuccess() { try? await store.resetBackoff() }
                    logger.info(
                        "task type registered",
                        metadata: ["type": "\(m.legacyType)", "name": "\(m.name)", "created": "\(r.created)"])
                } catch {
                    pending = true
                    await noteAPIError(error, context: "register \(m.name)")
                }
            }
            if !pending {
                ctx.sendWake.signal()
                return
            }
            attempt += 1
            try await Task.sleep(for: .milliseconds(Int64(backoff(attempts: attempt, base: 0.25, cap: 5) * 1000)))
        }
    }

    // MARK: - One-shot driving (verify --repair without a running bridge)

    /// One pass of every loop, for commands that re-drive rows when no
    /// bridge may be running: register, capture, send what is due, mirror.
    public func driveOnce(timeout: Double = 60) async throws {
        for m in config.types where !(await state.isRegistered(m.name)) {
            if (try? await client.registerTaskType(name: m.name, version: m.version, paramSchema: m.paramSchema)) != nil
            {
                await state.markRegistered(m.name)
            }
        }
        try await refreshModes()
        _ = try await captureOnce()
        let deadline = Date().timeIntervalSince1970 + timeout
        while Date().timeIntervalSince1970 < deadline, try await sendWave() > 0 {}
        try await mirrorCycle()
    }
}
