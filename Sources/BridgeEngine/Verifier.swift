import BridgeConfig
import Foundation
import LegacyQueue
import Logging
import TaskManagerClient
import TaskManagerModel

/// `taskbridge verify`: reads both sides, classifies every difference,
/// optionally re-drives what can be re-driven. Pages through the legacy table
/// (memory flat in its size), never holds a read transaction across a network
/// call, and reads TaskManager only through its API (per-id GETs and paged
/// lists) with bounded concurrency.
public struct Verifier: Sendable {
    public struct Options: Sendable {
        public var types: [TypeMapping]
        public var grace: Double = 60
        public var pageSize = 1000
        public var concurrency = 32
        public var repair = false
        public var keepFindings = true
        public init(types: [TypeMapping]) { self.types = types }
    }

    public struct Report: Sendable {
        public var checkedRows = 0
        public var findings: [ParityFinding] = []
        public var counts: [String: [ParityClass: Int]] = [:]
        public var readErrors: [String] = []
        public var repaired: [String] = []
        public var notRepaired: [String] = []

        public var breaking: Int {
            counts.values.reduce(0) { $0 + $1.filter { $0.key.breaksParity }.values.reduce(0, +) }
        }
        public var parityHolds: Bool { breaking == 0 && readErrors.isEmpty }

        mutating func add(_ f: ParityFinding, keep: Bool) {
            counts[f.taskType, default: [:]][f.kind, default: 0] += 1
            if keep { findings.append(f) }
        }
    }

    let store: LegacyQueueStore
    let client: TaskManagerClient
    let bridgeID: String
    let options: Options

    public init(store: LegacyQueueStore, client: TaskManagerClient, bridgeID: String, options: Options) {
        self.store = store
        self.client = client
        self.bridgeID = bridgeID
        self.options = options
    }

    public func run(progress: @Sendable (Int, Int) -> Void = { _, _ in }) async throws -> Report {
        var report = Report()
        let types = options.types.map(\.legacyType)
        let byType = Dictionary(options.types.map { ($0.legacyType, $0) }, uniquingKeysWith: { a, _ in a })
        let modes = try await store.modes()
        let total = try await store.countRows(types: types)
        let now = Date().timeIntervalSince1970
        func age(_ text: String?) -> Double {
            guard let t = text, let d = LegacyTimestamp.parse(t) else { return .infinity }
            return now - d.timeIntervalSince1970
        }
        var after: Int64 = 0
        while true {
            let page = try await store.bridgedRows(types: types, afterID: after, limit: options.pageSize)
            guard let last = page.last else { break }
            after = last.row.id
            let ids = page.compactMap {
                $0.ledger?.state == .sent || $0.ledger?.state == .done ? $0.ledger?.tmTaskID : nil
            }
            let tasks = await fetch(ids)
            for item in page {
                report.checkedRows += 1
                let row = item.row
                let mode = BridgeMode(rawValue: modes[row.taskType] ?? "off") ?? .off
                guard let l = item.ledger else {
                    let status = LegacyStatus(text: row.status)
                    // A queued row outside a canary's share is the legacy
                    // workers' by design, like every row they executed.
                    if status == .queued, mode.claimsRows, item.bridgeShare, age(row.createdAt) > options.grace {
                        let due =
                            row.runAfter.flatMap(LegacyTimestamp.parse).map { $0.timeIntervalSince1970 <= now } ?? true
                        if due {
                            report.add(
                                ParityFinding(
                                    kind: .missingInTaskManager, taskType: row.taskType, legacyID: row.id, taskID: nil,
                                    detail: "queued in a \(mode.rawValue) type and not forwarded"),
                                keep: options.keepFindings)
                        }
                    } else if row.claimedBy == bridgeID, age(row.claimedAt) > options.grace {
                        // Held by the bridge with no ledger entry: nothing links
                        // it to a task any more (its task, if any, shows as API-native).
                        report.add(
                            ParityFinding(
                                kind: .missingInTaskManager, taskType: row.taskType, legacyID: row.id, taskID: nil,
                                detail: "held by the bridge (\(row.status ?? "NULL")) but absent from the ledger"),
                            keep: options.keepFindings)
                    }
                    continue
                }
                switch l.state {
                case .archived:
                    continue  // lives in the archive table, never among live entries
                case .quarantined:
                    report.add(
                        ParityFinding(
                            kind: .quarantined, taskType: row.taskType, legacyID: row.id, taskID: nil,
                            detail: l.lastError ?? "quarantined"), keep: options.keepFindings)
                case .intent:
                    // Not due yet (run_after_utc in the future): not missing.
                    // Once due, the grace window counts from the due time.
                    let since = l.dueAt > 0 ? now - l.dueAt : age(l.claimedAt)
                    if l.dueAt <= now, min(since, age(l.claimedAt)) > options.grace {
                        report.add(
                            ParityFinding(
                                kind: .missingInTaskManager, taskType: row.taskType, legacyID: row.id, taskID: nil,
                                detail: "not yet accepted by TaskManager" + (l.lastError.map { ": \($0)" } ?? "")),
                            keep: options.keepFindings)
                    }
                case .sent, .done:
                    guard let id = l.tmTaskID else { continue }
                    switch tasks[id] {
                    case .some(.success(let task)):
                        let settled = age(l.updatedAt ?? l.claimedAt) > options.grace
                        for f in ParityClassifier.compare(
                            row: row, mapping: byType[row.taskType], ledger: l, task: task, settled: settled)
                        {
                            report.add(f, keep: options.keepFindings)
                        }
                    case .some(.failure(.notFound)):
                        report.add(
                            ParityFinding(
                                kind: .missingInTaskManager, taskType: row.taskType, legacyID: row.id, taskID: id,
                                detail: "task \(id) does not exist in TaskManager"), keep: options.keepFindings)
                    case .some(.failure(let e)):
                        report.readErrors.append("task \(id): \(e)")
                    case .none:
                        report.readErrors.append("task \(id): not fetched")
                    }
                }
            }
            progress(report.checkedRows, total)
            if !report.readErrors.isEmpty { return report }
        }
        // Ledger entries whose row is gone.
        var lastOrphan: Int64 = 0
        while true {
            let orphans = try await store.orphanLedgerEntries(afterID: lastOrphan, limit: options.pageSize)
            guard let l = orphans.last else { break }
            lastOrphan = l.legacyID
            for o in orphans where types.contains(o.taskType) {
                report.add(
                    ParityFinding(
                        kind: .missingInSQLite, taskType: o.taskType, legacyID: o.legacyID, taskID: o.tmTaskID,
                        detail: "legacy row \(o.legacyID) is "
                            + "gone" + (o.tmTaskID.map { " (task \($0) remains)" } ?? "")),
                    keep: options.keepFindings)
            }
        }
        for r in try await store.rowsExecutedByLegacy() where types.contains(r.taskType) {
            report.add(
                ParityFinding(
                    kind: .executedByLegacy, taskType: r.taskType, legacyID: r.legacyID, taskID: nil,
                    detail: """
                        created \(r.createdAt ?? "?") after the type's last cutover but executed by \
                        \(r.claimedBy ?? "a legacy worker") (\(r.status ?? "NULL")): it arrived while the insert \
                        trigger was missing
                        """), keep: options.keepFindings)
        }
        // Reverse types (now, or with rows from a reverse stage): every task
        // the bridge turned into a row, and back.
        let withEntries = Set(try await store.reverseCounts().keys)
        let reverseTypes = options.types.filter {
            modes[$0.legacyType] == "reverse" || withEntries.contains($0.legacyType)
        }
        let reverseNames = Set(reverseTypes.map(\.legacyType))
        try await verifyReverse(reverseTypes, into: &report)
        if !report.readErrors.isEmpty { return report }
        // Tasks of bridged types that no legacy row produced.
        let origins = try await store.knownOrigins()
        for m in options.types where !reverseNames.contains(m.legacyType) {
            let read = try await eachTaskPage(of: m, into: &report) { page, report in
                let ids = page.map(\.id)
                let known = try await store.ledgerTaskIDs(among: ids).union(try await store.shadowTaskIDs(among: ids))
                // A per-row task names its row (legacy id and origin): one
                // made for a row of this file that the file does not have is
                // a row lost (a restore of an older copy), not API-native.
                // The list has no params: unknown tasks are fetched.
                var lost: Set<Int64> = []
                if m.dedupe == .perRow {
                    for (id, result) in await fetch(page.map(\.id).filter { !known.contains($0) }) {
                        guard case .success(let task) = result, case .string(let o)? = task.params?[m.originMarker],
                            origins.contains(o)
                        else { continue }
                        lost.insert(id)
                        report.add(
                            ParityFinding(
                                kind: .missingInSQLite, taskType: m.legacyType,
                                legacyID: task.params?[m.marker]?.intValue, taskID: id,
                                detail: "task \(id) was made for a row of this file (origin \(o)) that the file does "
                                    + "not have: dropped by a restore of an older copy?"),
                            keep: options.keepFindings)
                    }
                }
                for t in page where !known.contains(t.id) && !lost.contains(t.id) {
                    report.add(
                        ParityFinding(
                            kind: .apiNative, taskType: m.legacyType, legacyID: nil, taskID: t.id,
                            detail: "created in TaskManager directly (status \(t.rawStatus))"),
                        keep: options.keepFindings)
                }
            }
            if !read { return report }
        }
        return report
    }

    /// Every task of a type, a page at a time (the list API has no params
    /// and no total). False when a page could not be read (recorded).
    func eachTaskPage(
        of m: TypeMapping, into report: inout Report, _ body: ([TaskInfo], inout Report) async throws -> Void
    ) async throws -> Bool {
        var offset = 0
        while true {
            let page: [TaskInfo]
            do {
                page = try await client.listTasks(type: m.name, limit: options.pageSize, offset: offset)
            } catch {
                report.readErrors.append("list tasks of \(m.name): \(error)")
                return false
            }
            if page.isEmpty { return true }
            offset += page.count
            try await body(page, &report)
            if page.count < options.pageSize { return true }
        }
    }

    /// The reverse direction: a task without a row (the bridge holds it and
    /// no row exists), a row without a task, an outcome TaskManager does not
    /// show (or refused: a conflict), params that differ.
    func verifyReverse(_ types: [TypeMapping], into report: inout Report) async throws {
        guard !types.isEmpty else { return }
        let names = types.map(\.legacyType)
        let now = Date().timeIntervalSince1970
        var known = Set<Int64>()
        var after: Int64 = 0
        while true {
            let page = try await store.reverseEntries(types: names, afterID: after, limit: options.pageSize)
            guard let last = page.last else { break }
            after = last.entryID
            known.formUnion(page.map(\.taskID))
            let tasks = await fetch(page.filter { $0.state != .lost }.map(\.taskID))
            for e in page where e.state != .lost {
                report.checkedRows += 1
                func add(_ kind: ParityClass, _ detail: String) {
                    report.add(
                        ParityFinding(
                            kind: kind, taskType: e.taskType, legacyID: e.legacyID, taskID: e.taskID, detail: detail),
                        keep: options.keepFindings)
                }
                let task: TaskInfo
                switch tasks[e.taskID] {
                case .some(.success(let t)): task = t
                case .some(.failure(.notFound)):
                    add(.missingInTaskManager, "legacy row \(e.legacyID) was made for task \(e.taskID), which is gone")
                    continue
                case .some(.failure(let error)):
                    report.readErrors.append("task \(e.taskID): \(error)")
                    continue
                case .none:
                    report.readErrors.append("task \(e.taskID): not fetched")
                    continue
                }
                guard let row = e.row else {
                    add(.missingInSQLite, "task \(e.taskID)'s legacy row \(e.legacyID) is gone or replaced")
                    continue
                }
                let legacy = LegacyStatus(text: row.status)
                switch e.state {
                case .conflict:
                    add(
                        .statusDiverged,
                        "the legacy row ran (\(row.status ?? "NULL")) but TaskManager refused its outcome: "
                            + (e.lastError ?? "conflict"))
                case .done:
                    let ok: Bool
                    switch legacy {
                    case .completed: ok = task.rawStatus == "completed"
                    case .failed, .cancelled: ok = ["failed", "pending", "claimed"].contains(task.rawStatus)
                    default: ok = false
                    }
                    if !ok {
                        add(.statusDiverged, "legacy \(row.status ?? "NULL") vs TaskManager \(task.rawStatus)")
                    }
                case .inserted, .completing:
                    let age = LegacyTimestamp.parse(e.claimedAt).map { now - $0.timeIntervalSince1970 } ?? 0
                    if age > options.grace, task.rawStatus != "claimed" || task.claimedBy != bridgeID {
                        add(
                            .statusDiverged,
                            "row \(row.status ?? "NULL") for the bridge's claim, TaskManager \(task.rawStatus)"
                                + (task.claimedBy.map { " by \($0)" } ?? ""))
                    }
                case .lost:
                    break
                }
                let rowParams = row.parameters.flatMap { bytes in try? JSONParser.parse(bytes) }
                if let expected = task.params, let rowParams, !expected.semanticallyEquals(rowParams) {
                    add(.payloadDiverged, "row parameters differ from task \(e.taskID)'s params")
                }
            }
            if !report.readErrors.isEmpty { return }
        }
        // Tasks TaskManager shows held by the bridge that have no row (yet).
        for m in types {
            let read = try await eachTaskPage(of: m, into: &report) { page, report in
                for t in page where !known.contains(t.id) {
                    if t.rawStatus == "claimed" && t.claimedBy == bridgeID {
                        report.add(
                            ParityFinding(
                                kind: .missingInSQLite, taskType: m.legacyType, legacyID: nil, taskID: t.id,
                                detail: "claimed by the bridge, no legacy row (the bridge inserts one when it runs)"),
                            keep: options.keepFindings)
                    } else if t.rawStatus != "pending" {
                        report.add(
                            ParityFinding(
                                kind: .apiNative, taskType: m.legacyType, legacyID: nil, taskID: t.id,
                                detail: "executed outside the bridge (status \(t.rawStatus))"),
                            keep: options.keepFindings)
                    }
                }
            }
            if !read { return }
        }
    }

    func fetch(_ ids: [Int64]) async -> [Int64: Result<TaskInfo, TaskManagerError>] {
        let client = self.client
        // Collapsed rows share a task: fetch each task once.
        let unique = Array(Set(ids))
        return await withTaskGroup(of: (Int64, Result<TaskInfo, TaskManagerError>).self) { group in
            var out: [Int64: Result<TaskInfo, TaskManagerError>] = [:]
            var next = 0, inFlight = 0
            while next < unique.count || inFlight > 0 {
                while next < unique.count && inFlight < options.concurrency {
                    let id = unique[next]
                    next += 1
                    inFlight += 1
                    group.addTask { (id, await Self.get(client, id)) }
                }
                guard let (id, r) = await group.next() else { break }
                inFlight -= 1
                out[id] = r
            }
            return out
        }
    }

    /// Kept out of the task-group closure: written inline as a typed
    /// `do throws(...)` there, the release build lost every result.
    static func get(_ client: TaskManagerClient, _ id: Int64) async -> Result<TaskInfo, TaskManagerError> {
        do {
            return .success(try await client.getTask(id: id))
        } catch {
            return .failure(error)
        }
    }

    /// Re-drives what can be re-driven; returns what was done and what not.
    public func repair(_ report: Report, policy: CapturePolicy) async throws -> (done: [String], notDone: [String]) {
        var done: [String] = [], notDone: [String] = []
        var backlogTypes: Set<String> = []
        let origin = try await store.origin()
        for f in report.findings {
            switch f.kind {
            case .missingInTaskManager:
                guard let id = f.legacyID else { continue }
                if f.taskID != nil {
                    try await store.resetToIntent(legacyID: id)
                    done.append("row \(id): will be forwarded again (its task vanished)")
                } else if f.detail.hasPrefix("queued") {
                    backlogTypes.insert(f.taskType)
                } else if f.detail.hasPrefix("held by the bridge") {
                    if try await store.adoptRow(legacyID: id) {
                        done.append(
                            """
                            row \(id): back in the ledger; it will be forwarded (a finished task is found again by \
                            dedupe)
                            """
                        )
                    } else {
                        notDone.append(
                            "row \(id): finished while unlinked from the ledger; compare it with TaskManager by hand")
                    }
                } else {
                    try await store.resetBackoff()
                    done.append("row \(id): re-sent")
                }
            case .statusDiverged:
                guard let id = f.legacyID, let taskID = f.taskID else { continue }
                do {
                    let t = try await client.getTask(id: taskID)
                    if try await store.forceMirror(
                        legacyID: id, tmStatus: t.rawStatus, result: t.result, error: t.errorMessage)
                    {
                        done.append("row \(id): status set to TaskManager's \(t.rawStatus)")
                    } else {
                        notDone.append("row \(id): not held by the bridge; status left as is")
                    }
                } catch {
                    notDone.append("row \(id): \(error)")
                }
            case .quarantined:
                guard let id = f.legacyID else { continue }
                let rows = try await store.bridgedRows(types: [f.taskType], afterID: id - 1, limit: 1)
                if let r = rows.first?.row, r.id == id, case .intent = policy.decide(r, mode: .forward, origin: origin)
                {
                    _ = try await store.quarantineRetry(ids: [id], taskType: nil)
                    done.append("row \(id): released from quarantine (its parameters now validate)")
                } else {
                    notDone.append(
                        "row \(id): still fails (\(f.detail.prefix(100))); fix the row, then quarantine retry")
                }
            case .payloadDiverged:
                notDone.append(
                    """
                    row \(f.legacyID ?? 0): params differ from task \(f.taskID ?? 0); a new task would change its \
                    identity, decide by hand
                    """
                )
            case .missingInSQLite:
                notDone.append("row \(f.legacyID ?? 0): deleted from SQLite; restore it from an export if it matters")
            case .executedByLegacy:
                notDone.append(
                    "row \(f.legacyID ?? 0): a legacy worker executed it while the insert trigger was missing; "
                        + "nothing to re-drive (check the worker's result)")
            case .collapsed, .apiNative:
                continue
            }
        }
        if !backlogTypes.isEmpty {
            let types = Array(backlogTypes).sorted()
            var remaining = true
            var claimed = 0
            while remaining {
                let rows = try await store.readBacklog(types: types, limit: 500)
                var decisions: [Int64: LegacyQueueStore.CaptureInput] = [:]
                for row in rows { decisions[row.id] = policy.decideClaimed(row, origin: origin).input }
                let r = try await store.claimBacklog(rows, decisions: decisions, origin: origin)
                claimed += r.processed
                remaining = rows.count == 500
            }
            done.append("\(claimed) queued row(s) claimed for forwarding")
        }
        return (done, notDone)
    }
}
