import Foundation
import GRDB
import TaskManagerModel

/// Paged reads for `verify`, `retire-check` and `export`: each call is one
/// short read transaction, so no read transaction spans a network call.
extension LegacyQueueStore {
    public struct BridgedRow: Sendable {
        public var row: LegacyRow
        public var ledger: LedgerEntry?
        /// The canary rule gives this row to the bridge (see `Canary`); false
        /// for a row of a partial `forward` type left to legacy workers.
        public var bridgeShare = true
    }

    /// A row the bridge should have taken at insert that a legacy worker
    /// executed anyway: a type taking rows (`forward` in its share, or
    /// `retired`), a row created after the type's last cutover, claimed by
    /// someone else, with no ledger entry. It happens only while the insert
    /// trigger was missing (a recreated table before the bridge reinstalled
    /// it); backlog rows, queued before the cutover, are raced fairly.
    public struct LegacyExecuted: Sendable, Equatable {
        public var legacyID: Int64
        public var taskType: String
        public var status: String?
        public var claimedBy: String?
        public var createdAt: String?
    }

    /// Every such row (capped at `limit`), oldest first. The stage's start is
    /// compared in Swift: legacy timestamps come in several formats.
    public func rowsExecutedByLegacy(limit: Int = 100_000) async throws -> [LegacyExecuted] {
        let t = table, b = bridgeID
        let candidates = try await asyncRead { db -> [(LegacyExecuted, String?)] in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT q.id, q.task_type, q.status, q.claimed_by, CAST(q.created_at AS TEXT),
                        (SELECT MAX(a.at) FROM _taskbridge_audit a WHERE a.task_type = q.task_type
                            AND a.action = 'cutover')
                    FROM \(t) q
                    WHERE q.status IS NOT 'queued' AND q.claimed_by IS NOT ? AND \(Canary.bridgeTakesSQL("q"))
                      AND q.id NOT IN (SELECT legacy_id FROM _taskbridge_ledger)
                    ORDER BY q.id LIMIT ?
                    """,
                arguments: [b, limit]
            ).map {
                (
                    LegacyExecuted(legacyID: $0[0], taskType: $0[1], status: $0[2], claimedBy: $0[3], createdAt: $0[4]),
                    $0[5]
                )
            }
        }
        return candidates.compactMap { row, since in
            guard let since, let start = LegacyTimestamp.parse(since), let created = row.createdAt,
                let at = LegacyTimestamp.parse(created), at > start
            else { return nil }
            return row
        }
    }

    public func countRows(types: [String]) async throws -> Int {
        guard !types.isEmpty else { return 0 }
        return try await asyncRead { db in
            try Int.fetchOne(
                db,
                sql:
                    "SELECT COUNT(*) FROM \(self.table) WHERE task_type IN "
                    + "(\(types.map { _ in "?" }.joined(separator: ",")))",
                arguments: StatementArguments(types)) ?? 0
        }
    }

    /// Rows of the given types with id > `afterID`, with their ledger entry.
    public func bridgedRows(types: [String], afterID: Int64, limit: Int) async throws -> [BridgedRow] {
        guard !types.isEmpty else { return [] }
        let select = LegacyRow.selectSQL(schema)
        return try await asyncRead { db in
            var args = StatementArguments(types)
            args += [afterID, limit]
            let rows = try Row.fetchAll(
                db,
                sql:
                    "\(select) WHERE task_type IN (\(types.map { _ in "?" }.joined(separator: ","))) AND id > ? "
                    + "ORDER BY id LIMIT ?",
                arguments: args
            ).map(LegacyRow.init)
            guard let first = rows.first?.id, let last = rows.last?.id else { return [] }
            let hasLedger = try db.tableExists("_taskbridge_ledger")
            var ledger: [Int64: LedgerEntry] = [:]
            if hasLedger {
                for r in try Row.fetchAll(
                    db, sql: "SELECT \(Ledger.entryColumns) FROM _taskbridge_ledger WHERE legacy_id BETWEEN ? AND ?",
                    arguments: [first, last])
                {
                    let e = LedgerEntry(row: r)
                    ledger[e.legacyID] = e
                }
            }
            let t = self.table
            let shared =
                try !db.tableExists("_taskbridge_mode")
                ? []
                : Set(
                    try Int64.fetchAll(
                        db,
                        sql: "SELECT id FROM \(t) WHERE id BETWEEN ? AND ? AND \(Canary.bridgeTakesSQL(t))",
                        arguments: [first, last]))
            return rows.map { BridgedRow(row: $0, ledger: ledger[$0.id], bridgeShare: shared.contains($0.id)) }
        }
    }

    /// Ledger entries whose legacy row no longer exists.
    public func orphanLedgerEntries(afterID: Int64, limit: Int) async throws -> [LedgerEntry] {
        try await asyncRead { db in
            guard try db.tableExists("_taskbridge_ledger") else { return [] }
            return try Row.fetchAll(
                db,
                sql:
                    """
                    SELECT \(Ledger.entryColumns("l")) FROM _taskbridge_ledger l LEFT JOIN \(self.table) q ON q.id =
                        l.legacy_id WHERE q.id IS \
                    NULL AND l.legacy_id > ? ORDER BY l.legacy_id LIMIT ?
                    """,
                arguments: [afterID, limit]
            ).map(LedgerEntry.init)
        }
    }

    /// Which of these TaskManager ids the ledger knows.
    public func ledgerTaskIDs(among ids: [Int64]) async throws -> Set<Int64> {
        guard !ids.isEmpty else { return [] }
        return try await asyncRead { db in
            guard try db.tableExists("_taskbridge_ledger") else { return [] }
            // Archived entries too: their tasks are the bridge's, of rows
            // an earlier generation had.
            let marks = ids.map { _ in "?" }.joined(separator: ",")
            var args = StatementArguments(ids)
            args += StatementArguments(ids)
            return Set(
                try Int64.fetchAll(
                    db,
                    sql: """
                        SELECT tm_task_id FROM _taskbridge_ledger WHERE tm_task_id IN (\(marks))
                        UNION SELECT tm_task_id FROM _taskbridge_ledger_archive WHERE tm_task_id IN (\(marks))
                        """,
                    arguments: args))
        }
    }

    /// Newest `created_at` of a type's rows, compared as instants.
    public func lastInsert(taskType: String) async throws -> Date? {
        try await asyncRead { db in
            var newest: Date?
            let cursor = try String.fetchCursor(
                db,
                sql:
                    """
                    SELECT created_at FROM \(self.table) WHERE task_type = ? AND created_at IS NOT NULL ORDER BY id \
                    DESC LIMIT 1000
                    """,
                arguments: [taskType])
            while let text = try cursor.next() {
                if let d = LegacyTimestamp.parse(text), newest.map({ d > $0 }) ?? true { newest = d }
            }
            return newest
        }
    }

    /// A random sample of forwarded rows for the live parity check.
    public func paritySample(size: Int) async throws -> [BridgedRow] {
        let select = LegacyRow.selectSQL(schema)
        return try await asyncRead { db in
            let entries = try Row.fetchAll(
                db,
                sql:
                    """
                    SELECT \(Ledger.entryColumns) FROM _taskbridge_ledger WHERE state IN ('sent','done') AND
                        tm_task_id IS NOT NULL ORDER \
                    BY RANDOM() LIMIT ?
                    """,
                arguments: [size]
            ).map(LedgerEntry.init)
            guard !entries.isEmpty else { return [] }
            let rows = try Row.fetchAll(
                db, sql: "\(select) WHERE id IN (\(entries.map { _ in "?" }.joined(separator: ",")))",
                arguments: StatementArguments(entries.map(\.legacyID))
            ).map(LegacyRow.init)
            let byID = Dictionary(rows.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
            return entries.compactMap { e in byID[e.legacyID].map { BridgedRow(row: $0, ledger: e) } }
        }
    }

    /// Keeps the latest live-parity verdict per sampled row: a finding is
    /// stored, a clean result clears an older finding.
    public func recordParity(_ results: [(Int64, String, String?, String?)]) async throws {
        guard !results.isEmpty else { return }
        try await writeLedger { db in
            let now = LegacyTimestamp.format(Date())
            for (id, type, kind, detail) in results {
                if let kind {
                    try db.exec(
                        sql:
                            """
                            INSERT INTO _taskbridge_parity (legacy_id, task_type, class, detail, at) VALUES (?, ?, ?, \
                            ?, ?) ON CONFLICT(legacy_id) DO UPDATE SET class = excluded.class, detail = \
                            excluded.detail, at = excluded.at
                            """,
                        arguments: [id, type, kind, detail, now])
                } else {
                    try db.exec(sql: "DELETE FROM _taskbridge_parity WHERE legacy_id = ?", arguments: [id])
                }
            }
        }
    }

    public func distinctTypes() async throws -> [String] {
        try await asyncRead { db in
            try String.fetchAll(
                db, sql: "SELECT DISTINCT task_type FROM \(self.table) WHERE task_type IS NOT NULL ORDER BY 1")
        }
    }
}
