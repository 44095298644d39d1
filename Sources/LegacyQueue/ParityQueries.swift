import Foundation
import GRDB
import SQLiteText
import TaskManagerModel

/// Paged reads for `verify`, `retire-check` and `export`: each call is one
/// short read transaction, so no read transaction spans a network call.
extension LegacyQueueStore {
    public struct BridgedRow: Sendable {
        public var row: LegacyRow
        public var ledger: LedgerEntry?
    }

    public func countRows(types: [String]) async throws -> Int {
        guard !types.isEmpty else { return 0 }
        return try await pool.read { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM \(self.table) WHERE task_type IN (\(types.map { _ in "?" }.joined(separator: ",")))",
                             arguments: StatementArguments(types)) ?? 0
        }
    }

    /// Rows of the given types with id > `afterID`, with their ledger entry.
    public func bridgedRows(types: [String], afterID: Int64, limit: Int) async throws -> [BridgedRow] {
        guard !types.isEmpty else { return [] }
        let select = LegacyRow.selectSQL(schema)
        return try await pool.read { db in
            var args = StatementArguments(types)
            args += [afterID, limit]
            let rows = try Row.fetchAll(
                db, sql: "\(select) WHERE task_type IN (\(types.map { _ in "?" }.joined(separator: ","))) AND id > ? ORDER BY id LIMIT ?",
                arguments: args
            ).map(LegacyRow.init)
            guard let first = rows.first?.id, let last = rows.last?.id else { return [] }
            let hasLedger = try db.tableExists("_taskbridge_ledger")
            var ledger: [Int64: LedgerEntry] = [:]
            if hasLedger {
                for r in try Row.fetchAll(db, sql: "SELECT * FROM _taskbridge_ledger WHERE legacy_id BETWEEN ? AND ?", arguments: [first, last]) {
                    let e = LedgerEntry(row: r)
                    ledger[e.legacyID] = e
                }
            }
            return rows.map { BridgedRow(row: $0, ledger: ledger[$0.id]) }
        }
    }

    /// Ledger entries whose legacy row no longer exists.
    public func orphanLedgerEntries(afterID: Int64, limit: Int) async throws -> [LedgerEntry] {
        try await pool.read { db in
            guard try db.tableExists("_taskbridge_ledger") else { return [] }
            return try Row.fetchAll(
                db,
                sql: "SELECT l.* FROM _taskbridge_ledger l LEFT JOIN \(self.table) q ON q.id = l.legacy_id WHERE q.id IS NULL AND l.legacy_id > ? ORDER BY l.legacy_id LIMIT ?",
                arguments: [afterID, limit]
            ).map(LedgerEntry.init)
        }
    }

    /// Which of these TaskManager ids the ledger knows.
    public func ledgerTaskIDs(among ids: [Int64]) async throws -> Set<Int64> {
        guard !ids.isEmpty else { return [] }
        return try await pool.read { db in
            guard try db.tableExists("_taskbridge_ledger") else { return [] }
            return Set(try Int64.fetchAll(db, sql: "SELECT tm_task_id FROM _taskbridge_ledger WHERE tm_task_id IN (\(ids.map { _ in "?" }.joined(separator: ",")))",
                                          arguments: StatementArguments(ids)))
        }
    }

    /// Writes a TaskManager status into a bridged row even where the normal
    /// monotonic guard would refuse (verify --repair of a diverged status).
    public func forceMirror(legacyID: Int64, tmStatus: String, result: JSONValue?, error: String?) async throws -> Bool {
        guard let legacy = LegacyStatus.mirroring(taskManagerStatus: tmStatus) else { return false }
        let t = table, b = bridgeID
        return try await write { db in
            let now = LegacyTimestamp.format(Date())
            if legacy.isTerminal {
                try db.exec(
                    sql: """
                        UPDATE \(t) SET status = ?, completed_at = ?, result_data = ?, error_message = CAST(? AS TEXT), updated_at = ?
                        WHERE id = ? AND claimed_by = ?
                        """,
                    arguments: [legacy.rawValue, now, result.map(PHPJSON.encode), SQLiteText.bind(error), now, legacyID, b])
            } else {
                // Never move a finished row back in flight (invariant 4).
                try db.exec(
                    sql: "UPDATE \(t) SET status = ?, updated_at = ? WHERE id = ? AND claimed_by = ? AND status IN ('claimed','running')",
                    arguments: [legacy.rawValue, now, legacyID, b])
            }
            let changed = db.changesCount > 0
            try db.exec(sql: "UPDATE _taskbridge_ledger SET state = ?, tm_status = ?, updated_at = ? WHERE legacy_id = ?",
                           arguments: [legacy.isTerminal ? "done" : "sent", tmStatus, now, legacyID])
            return changed
        }
    }

    /// Hands an in-flight row the bridge holds without a ledger entry back to
    /// the capture path (a change row makes the bridge decide again).
    public func adoptRow(legacyID: Int64) async throws -> Bool {
        let t = table, b = bridgeID
        return try await write { db in
            let status = try String.fetchOne(db, sql: "SELECT status FROM \(t) WHERE id = ? AND claimed_by = ?", arguments: [legacyID, b])
            guard LegacyStatus(text: status) == .claimed else { return false }
            try db.exec(sql: "INSERT INTO _taskbridge_changes (row_id, op) VALUES (?, 'I')", arguments: [legacyID])
            return true
        }
    }

    /// Sends a forwarded row again (its task vanished from TaskManager).
    public func resetToIntent(legacyID: Int64) async throws {
        try await write { db in
            try db.exec(
                sql: "UPDATE _taskbridge_ledger SET state = 'intent', tm_task_id = NULL, tm_status = NULL, next_attempt_at = 0, updated_at = ? WHERE legacy_id = ? AND state IN ('sent','done')",
                arguments: [LegacyTimestamp.format(Date()), legacyID])
        }
    }

    /// Newest `created_at` of a type's rows, compared as instants.
    public func lastInsert(taskType: String) async throws -> Date? {
        try await pool.read { db in
            var newest: Date?
            let cursor = try String.fetchCursor(db, sql: "SELECT created_at FROM \(self.table) WHERE task_type = ? AND created_at IS NOT NULL ORDER BY id DESC LIMIT 1000", arguments: [taskType])
            while let text = try cursor.next() {
                if let d = LegacyTimestamp.parse(text), newest.map({ d > $0 }) ?? true { newest = d }
            }
            return newest
        }
    }

    /// A random sample of forwarded rows for the live parity check.
    public func paritySample(size: Int) async throws -> [BridgedRow] {
        let select = LegacyRow.selectSQL(schema)
        return try await pool.read { db in
            let entries = try Row.fetchAll(
                db, sql: "SELECT * FROM _taskbridge_ledger WHERE state IN ('sent','done') AND tm_task_id IS NOT NULL ORDER BY RANDOM() LIMIT ?",
                arguments: [size]
            ).map(LedgerEntry.init)
            guard !entries.isEmpty else { return [] }
            let rows = try Row.fetchAll(db, sql: "\(select) WHERE id IN (\(entries.map { _ in "?" }.joined(separator: ",")))",
                                        arguments: StatementArguments(entries.map(\.legacyID))).map(LegacyRow.init)
            let byID = Dictionary(rows.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
            return entries.compactMap { e in byID[e.legacyID].map { BridgedRow(row: $0, ledger: e) } }
        }
    }

    /// Keeps the latest live-parity verdict per sampled row: a finding is
    /// stored, a clean result clears an older finding.
    public func recordParity(_ results: [(Int64, String, String?, String?)]) async throws {
        guard !results.isEmpty else { return }
        try await write { db in
            let now = LegacyTimestamp.format(Date())
            for (id, type, kind, detail) in results {
                if let kind {
                    try db.exec(
                        sql: "INSERT INTO _taskbridge_parity (legacy_id, task_type, class, detail, at) VALUES (?, ?, ?, ?, ?) ON CONFLICT(legacy_id) DO UPDATE SET class = excluded.class, detail = excluded.detail, at = excluded.at",
                        arguments: [id, type, kind, detail, now])
                } else {
                    try db.exec(sql: "DELETE FROM _taskbridge_parity WHERE legacy_id = ?", arguments: [id])
                }
            }
        }
    }

    public func distinctTypes() async throws -> [String] {
        try await pool.read { db in try String.fetchAll(db, sql: "SELECT DISTINCT task_type FROM \(self.table) WHERE task_type IS NOT NULL ORDER BY 1") }
    }
}
