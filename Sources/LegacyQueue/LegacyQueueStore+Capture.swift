import Foundation
import GRDB
import TaskManagerModel

/// Capture, in two steps so that no parsing, validation, encoding or hashing
/// happens while the write lock is held (invariant 5): a read returns the
/// rows to decide; the engine decides them outside any transaction; a short
/// `BEGIN IMMEDIATE` applies the decisions to the rows that still read the
/// same (a row that changed meanwhile keeps its change row and comes back).
extension LegacyQueueStore {
    /// What capture records for one row, as the engine decided it.
    public enum CaptureInput: Sendable, Equatable {
        case intent(Ledger.Intent)
        case quarantine(taskType: String, code: String, detail: String)
        case verdict(verdict: String, reason: String?)
        /// A shadow copy of a row inserted while its type is in shadow (kept
        /// only if the row falls in the sampled share).
        case shadow(tmType: String, paramsJSON: String, priority: Int64?)
        case ignore
    }

    /// Parameter bytes read per capture batch, at most (one row may exceed it alone).
    static let maxBatchBytes = 4 << 20

    public struct ChangeBatch: Sendable {
        struct Change: Sendable {
            var seq: Int64
            var rowID: Int64
            var op: String
        }
        var changes: [Change]
        /// The rows as read (absent: deleted).
        var rows: [Int64: LegacyRow]
        var entries: [Int64: LedgerEntry]
        /// The rows the engine decides: no live entry applies to them.
        public var toDecide: [LegacyRow]
        public var remaining: Bool
        /// The generation's origin when the batch was read: the engine
        /// decides with it, and the write applies nothing if it changed.
        public var origin: String?
    }

    public struct CaptureResult: Sendable {
        public var processed = 0
        public var intents = 0
        public var quarantined = 0
        public var dryRun = 0
        /// Rows put back to `queued`: the backlog scan has work again.
        public var requeued = 0
        public var archived = 0
        public var remaining = false
        public var intentsByType: [String: Int] = [:]
        /// Shadow copies recorded, by legacy type.
        public var shadowsByType: [String: Int] = [:]
        public var verdicts: [DryRunKey: Int] = [:]
        public var quarantines: [QuarantineEvent] = []
        /// A new generation this write began (the table was recreated).
        public var newGeneration: (generation: Int64, archived: Int)?
    }

    /// A row put in quarantine by a ledger transition; the engine logs and
    /// counts each one (the store runs no logging policy).
    public struct QuarantineEvent: Sendable, Equatable {
        public var legacyID: Int64
        public var taskType: String
        public var code: String
        public var detail: String
    }

    public struct DryRunKey: Sendable, Hashable {
        public var taskType: String
        public var verdict: String
    }

    /// Up to `limit` change rows (bounded by parameter bytes too), their rows
    /// and ledger entries, in one read. Nil when there are none.
    public func readChanges(limit: Int) async throws -> ChangeBatch? {
        let select = LegacyRow.selectSQL(schema)
        let t = table
        return try await asyncRead { db -> ChangeBatch? in
            let changes = try Row.fetchAll(
                db.cachedStatement(
                    sql: """
                        SELECT c.seq, c.row_id, c.op, COALESCE(length(CAST(q.parameters AS BLOB)), 0) AS size
                        FROM _taskbridge_changes c LEFT JOIN \(t) q ON q.id = c.row_id ORDER BY c.seq LIMIT ?
                        """), arguments: [limit + 1])
            guard !changes.isEmpty else { return nil }
            var bytes = 0
            var take: [ChangeBatch.Change] = []
            for c in changes.prefix(limit) {
                bytes += c["size"] as Int
                take.append(.init(seq: c["seq"], rowID: c["row_id"], op: c["op"]))
                if bytes > Self.maxBatchBytes { break }
            }
            let ids = Array(Set(take.map(\.rowID)))
            let rows = try Self.rows(db, select: select, ids: ids)
            var entries: [Int64: LedgerEntry] = [:]
            for chunk in Self.chunks(ids) {
                let marks = chunk.map { _ in "?" }.joined(separator: ",")
                for r in try Row.fetchAll(
                    db, sql: "SELECT \(Ledger.entryColumns) FROM _taskbridge_ledger WHERE legacy_id IN (\(marks))",
                    arguments: StatementArguments(chunk))
                {
                    let e = LedgerEntry(row: r)
                    entries[e.legacyID] = e
                }
            }
            let ops = Dictionary(grouping: take, by: \.rowID).mapValues { Set($0.map(\.op)) }
            let toDecide = ids.sorted().compactMap { id -> LegacyRow? in
                guard let row = rows[id] else { return nil }
                if let e = entries[id], Self.stillApplies(e, to: row, ops: ops[id] ?? []) { return nil }
                return row
            }
            return ChangeBatch(
                changes: take, rows: rows, entries: entries, toDecide: toDecide, remaining: changes.count > take.count,
                origin: try Ledger.origin(db))
        }
    }

    /// Applies the engine's decisions to a batch in one write transaction and
    /// consumes its change rows. The ledger's rule comes first: an entry that
    /// no longer applies to its row (another row, or put back in the queue)
    /// is archived and the row is treated as new; one that applies is
    /// reopened for the mirror (the row was changed behind the bridge).
    public func applyChanges(_ batch: ChangeBatch, decisions: [Int64: CaptureInput]) async throws -> CaptureResult {
        let select = LegacyRow.selectSQL(schema)
        let t = table, b = bridgeID
        return try await writeLedger { db in
            var result = CaptureResult()
            result.remaining = batch.remaining
            result.newGeneration = try self.checkContinuity(db)
            guard try Ledger.originHolds(db, batch.origin) else {
                // A new generation began since the read: decide again with its origin.
                result.remaining = true
                return result
            }
            let generation = try Ledger.generation(db)
            let ids = Array(Set(batch.changes.map(\.rowID)))
            let now = try Self.rows(db, select: select, ids: ids)
            var stale = Set<Int64>()
            let ops = Dictionary(grouping: batch.changes, by: \.rowID).mapValues { Set($0.map(\.op)) }
            for id in ids.sorted() {
                guard let row = now[id] else { continue }  // deleted: the ledger keeps its record for verify
                guard let before = batch.rows[id], before.sameSnapshot(as: row) else {
                    stale.insert(id)
                    continue
                }
                result.processed += 1
                if let entry = batch.entries[id] {
                    if Self.stillApplies(entry, to: row, ops: ops[id] ?? []) {
                        try Ledger.reopen(db, legacyID: id)
                        continue
                    }
                    let requeued = LegacyStatus(text: row.status) == .queued || ops[id]?.contains("R") == true
                    try Ledger.archive(db, legacyID: id, reason: requeued ? .requeued : .replaced)
                    result.archived += 1
                    if requeued { result.requeued += 1 }
                } else if ops[id]?.contains("U") == true, LegacyStatus(text: row.status) == .queued {
                    result.requeued += 1
                }
                try Self.apply(
                    decisions[id] ?? .ignore, row: row, db: db, generation: generation, bridgeID: b, table: t,
                    inserted: ops[id]?.contains("I") == true, result: &result)
            }
            try ChangeLog.consume(db, upTo: batch.changes.map(\.seq).max() ?? 0, keeping: stale)
            return result
        }
    }

    /// The ledger's rule for a captured row that has an entry; a row the
    /// update trigger re-claimed after a re-queue (`R`) is new again even for
    /// an entry made before fingerprints.
    static func stillApplies(_ entry: LedgerEntry, to row: LegacyRow, ops: Set<String>) -> Bool {
        entry.applies(to: row) && !ops.contains("R")
    }

    /// One decided row into the ledger: an intent or a quarantine only for a
    /// row the bridge holds, a dry-run verdict for a queued one.
    static func apply(
        _ input: CaptureInput, row: LegacyRow, db: Database, generation: Int64, bridgeID: String, table: String,
        inserted: Bool = false, result: inout CaptureResult
    ) throws {
        let ours = row.claimedBy == bridgeID && [.claimed, .running].contains(LegacyStatus(text: row.status))
        switch input {
        case .ignore:
            break
        case .intent(let intent):
            guard ours else { return }
            if try Ledger.recordIntent(db, row: row, intent: intent, generation: generation) {
                result.intents += 1
                result.intentsByType[row.taskType, default: 0] += 1
            }
        case .quarantine(let taskType, let code, let detail):
            guard ours else { return }
            if try Ledger.recordQuarantine(
                db, row: row, legacyID: row.id, taskType: taskType, code: code, detail: detail,
                generation: generation, bridgeID: bridgeID, legacyTable: table)
            {
                result.quarantined += 1
                result.quarantines.append(
                    QuarantineEvent(legacyID: row.id, taskType: taskType, code: code, detail: detail))
            }
        case .verdict(let verdict, let reason):
            guard LegacyStatus(text: row.status) == .queued else { return }
            try recordVerdict(
                db, legacyID: row.id, taskType: row.taskType, verdict: verdict, reason: reason,
                at: LegacyTimestamp.format(Date()))
            result.dryRun += 1
            result.verdicts[DryRunKey(taskType: row.taskType, verdict: verdict), default: 0] += 1
        case .shadow(let tmType, let json, let priority):
            // Only rows inserted while the type is in shadow: a row of the
            // type's past (claimed, done) is not a comparison of this stage.
            guard inserted, !ours else { return }
            if try ShadowLedger.recordSampled(
                db, legacyTable: table, legacyID: row.id, taskType: row.taskType, tmType: tmType, paramsJSON: json,
                priority: priority, generation: generation, now: Date().timeIntervalSince1970)
            {
                result.shadowsByType[row.taskType, default: 0] += 1
            }
        }
    }

    static func recordVerdict(
        _ db: Database, legacyID: Int64, taskType: String, verdict: String, reason: String?, at: String
    ) throws {
        try db.exec(
            sql: """
                INSERT INTO _taskbridge_dryrun (legacy_id, task_type, verdict, reason, at) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT(legacy_id) DO UPDATE SET verdict = excluded.verdict, reason = excluded.reason, at =
                    excluded.at
                """,
            arguments: [legacyID, taskType, verdict, reason, at])
    }

    // MARK: - Backlog

    /// Queued rows of these types, oldest first (a read: the engine decides
    /// them as the bridge would hold them, then `claimBacklog` claims).
    public func readBacklog(types: [String], limit: Int) async throws -> [LegacyRow] {
        guard !types.isEmpty else { return [] }
        let select = LegacyRow.selectSQL(schema)
        let t = table
        return try await asyncRead { db in
            var args = StatementArguments(types)
            args += StatementArguments([limit])
            return try Row.fetchAll(
                db,
                sql:
                    "\(select) WHERE status = 'queued' AND task_type IN "
                    + "(\(types.map { _ in "?" }.joined(separator: ","))) AND \(Canary.bridgeTakesSQL(t)) "
                    + "ORDER BY id LIMIT ?",
                arguments: args
            ).map(LegacyRow.init)
        }
    }

    /// Claims the given queued rows with the legacy claim protocol
    /// (`BEGIN IMMEDIATE`, `WHERE status = 'queued'`), racing legacy workers
    /// fairly, and records their decisions in the same transaction. A row is
    /// claimed only if its parameters are still the bytes that were decided.
    public func claimBacklog(
        _ rows: [LegacyRow], decisions: [Int64: CaptureInput], origin: String?
    ) async throws -> CaptureResult {
        guard !rows.isEmpty else { return CaptureResult() }
        let select = LegacyRow.selectSQL(schema)
        let t = table, b = bridgeID
        return try await write { db in
            var result = CaptureResult()
            result.newGeneration = try self.checkContinuity(db)
            guard try Ledger.originHolds(db, origin) else {
                result.remaining = true  // decided with an older generation's origin: decide again
                return result
            }
            let generation = try Ledger.generation(db)
            let now = LegacyTimestamp.format(Date())
            let ids = rows.map(\.id)
            let held = try Self.ledgerIDs(db, among: ids)
            var claimedIDs: [Int64] = []
            for row in rows
            where try LegacyRows.claimQueued(
                db, table: t, id: row.id, parameters: row.parameters, bridgeID: b, now: now)
            {
                claimedIDs.append(row.id)
            }
            for claimed in try Self.rows(db, select: select, ids: claimedIDs).values.sorted(by: { $0.id < $1.id }) {
                result.processed += 1
                if held.contains(claimed.id) {
                    // Its old entry belongs to the row before it was queued again.
                    try Ledger.archive(db, legacyID: claimed.id, reason: .requeued)
                    result.archived += 1
                }
                try Self.apply(
                    decisions[claimed.id] ?? .ignore, row: claimed, db: db, generation: generation, bridgeID: b,
                    table: t, result: &result)
            }
            return result
        }
    }

    // MARK: - Orphans

    /// Rows the bridge holds (`claimed` or `running`) without a ledger entry
    /// and without a pending change row, after `afterID` in id order: their
    /// change rows were lost, or the ledger was (a restore). Paged by id, so a
    /// page of rows that cannot be adopted is never read twice in one sweep.
    public func readOrphans(afterID: Int64, limit: Int) async throws -> [LegacyRow] {
        let select = LegacyRow.selectSQL(schema)
        let b = bridgeID
        return try await asyncRead { db in
            try Row.fetchAll(
                db,
                sql: """
                    \(select) WHERE claimed_by = ? AND status IN ('claimed','running') AND id > ?
                      AND id NOT IN (SELECT legacy_id FROM _taskbridge_ledger)
                      AND id NOT IN (SELECT row_id FROM _taskbridge_changes)
                    ORDER BY id LIMIT ?
                    """,
                arguments: [b, afterID, limit]
            ).map(LegacyRow.init)
        }
    }

    /// Records the decisions for orphans that still read the same and still
    /// have no entry.
    public func adopt(
        _ rows: [LegacyRow], decisions: [Int64: CaptureInput], origin: String?
    ) async throws -> CaptureResult {
        guard !rows.isEmpty else { return CaptureResult() }
        let select = LegacyRow.selectSQL(schema)
        let t = table, b = bridgeID
        return try await writeLedger { db in
            var result = CaptureResult()
            result.newGeneration = try self.checkContinuity(db)
            guard try Ledger.originHolds(db, origin) else { return result }
            let generation = try Ledger.generation(db)
            let current = try Self.rows(db, select: select, ids: rows.map(\.id))
            let held = try Self.ledgerIDs(db, among: rows.map(\.id))
            for row in rows {
                guard let now = current[row.id], now.sameSnapshot(as: row), !held.contains(row.id) else { continue }
                result.processed += 1
                try Self.apply(
                    decisions[row.id] ?? .ignore, row: now, db: db, generation: generation, bridgeID: b, table: t,
                    result: &result)
            }
            return result
        }
    }

    // MARK: - Dry run

    /// Rows of dry-run types that arrived before their last dry-run verdict.
    public func dryRunBacklog(types: [String], limit: Int) async throws -> [LegacyRow] {
        guard !types.isEmpty else { return [] }
        let select = LegacyRow.selectSQL(schema)
        return try await asyncRead { db in
            let marks = types.map { _ in "?" }.joined(separator: ",")
            var args = StatementArguments(types)
            args += StatementArguments([limit])
            return try Row.fetchAll(
                db,
                sql: """
                    \(select) WHERE status = 'queued' AND task_type IN (\(marks))
                      AND id NOT IN (SELECT legacy_id FROM _taskbridge_dryrun) ORDER BY id LIMIT ?
                    """, arguments: args
            ).map(LegacyRow.init)
        }
    }

    public func recordDryRun(_ verdicts: [(Int64, String, String, String?)]) async throws {
        try await writeLedger { db in
            let now = LegacyTimestamp.format(Date())
            for (id, type, verdict, reason) in verdicts {
                try Self.recordVerdict(db, legacyID: id, taskType: type, verdict: verdict, reason: reason, at: now)
            }
        }
    }

    /// The rows with these ids, as `select` reads them, in chunks of 500.
    static func rows(_ db: Database, select: String, ids: [Int64]) throws -> [Int64: LegacyRow] {
        var out: [Int64: LegacyRow] = [:]
        for chunk in chunks(ids) {
            let marks = chunk.map { _ in "?" }.joined(separator: ",")
            let sql = "\(select) WHERE id IN (\(marks))"
            for r in try Row.fetchAll(db, sql: sql, arguments: StatementArguments(chunk)) {
                let row = LegacyRow(row: r)
                out[row.id] = row
            }
        }
        return out
    }

    /// Which of these ids have a live ledger entry.
    static func ledgerIDs(_ db: Database, among ids: [Int64]) throws -> Set<Int64> {
        var out = Set<Int64>()
        for chunk in chunks(ids) {
            let marks = chunk.map { _ in "?" }.joined(separator: ",")
            out.formUnion(
                try Int64.fetchAll(
                    db, sql: "SELECT legacy_id FROM _taskbridge_ledger WHERE legacy_id IN (\(marks))",
                    arguments: StatementArguments(chunk)))
        }
        return out
    }

    static func chunks(_ ids: [Int64], size: Int = 500) -> [[Int64]] {
        stride(from: 0, to: ids.count, by: size).map { Array(ids[$0..<min($0 + size, ids.count)]) }
    }
}
