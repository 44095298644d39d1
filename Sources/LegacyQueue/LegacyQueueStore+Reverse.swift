import Foundation
import GRDB
import TaskManagerModel

/// The reverse direction's reads and writes (`ReverseLedger` holds the rules).
extension LegacyQueueStore {
    /// Inserts the claimed task as a queued row with its entry, in one
    /// transaction, or recognises a task the bridge already holds a row for.
    /// Echo-flagged: the insert trigger captures none of the bridge's inserts.
    public func reverseInsert(
        _ task: ReverseLedger.Claimed, legacyType: String, tmType: String
    ) async throws -> ReverseLedger.InsertOutcome {
        let t = table
        return try await write { db in
            try ReverseLedger.insert(db, task: task, legacyType: legacyType, tmType: tmType, legacyTable: t)
        }
    }

    /// Copies the outcome of every newly terminal row into its entry; marks
    /// entries whose row is gone or replaced. Returns what changed.
    public func reverseCollect() async throws -> (completing: Int, lost: [Int64]) {
        let t = table
        if try await !pool.read({ db in
            try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM _taskbridge_reverse WHERE state = 'inserted')")
                ?? false
        }) {
            return (0, [])
        }
        return try await writeLedger { db in try ReverseLedger.collectOutcomes(db, legacyTable: t) }
    }

    public func reverseDue(limit: Int, now: Date = Date()) async throws -> [ReverseLedger.Outcome] {
        try await asyncRead { db in try ReverseLedger.due(db, now: now.timeIntervalSince1970, limit: limit) }
    }

    public func reverseCompleted(entryID: Int64, tmStatus: String) async throws {
        try await writeLedger { db in try ReverseLedger.recordCompleted(db, entryID: entryID, tmStatus: tmStatus) }
    }

    public func reverseRetry(entryID: Int64, error: String, nextAttemptAt: Double) async throws {
        try await writeLedger { db in
            try ReverseLedger.recordRetry(db, entryID: entryID, error: error, nextAttemptAt: nextAttemptAt)
        }
    }

    public func reverseConflict(entryID: Int64, detail: String) async throws {
        try await writeLedger { db in try ReverseLedger.recordConflict(db, entryID: entryID, detail: detail) }
    }

    /// Whether any entry is in flight: a row waiting for a legacy worker, or
    /// an outcome not yet accepted by TaskManager (due now or later).
    public func reverseInFlight() async throws -> Bool {
        try await asyncRead { db in try ReverseLedger.anyLive(db) }
    }

    /// Tasks with a live entry (the bridge holds a row for them).
    public func reverseHeldTasks() async throws -> Set<Int64> {
        try await asyncRead { db in try ReverseLedger.liveTasks(db) }
    }

    /// Rows the bridge inserted for a type that no legacy worker took yet:
    /// the claim loop keeps at most `[bridge] reverse_prefetch` of them, so
    /// leases (which run from the claim) are not spent waiting in the queue.
    public func reverseWaiting(taskType: String) async throws -> Int {
        let t = table
        return try await asyncRead { db in
            try Int.fetchOne(
                db,
                sql: """
                    SELECT COUNT(*) FROM _taskbridge_reverse r JOIN \(t) q ON q.id = r.legacy_id
                    WHERE r.state = 'inserted' AND r.task_type = ? AND q.status = 'queued'
                    """, arguments: [taskType]) ?? 0
        }
    }

    /// Per type and state, for status and the dashboard.
    public func reverseCounts() async throws -> [String: [ReverseLedger.State: Int]] {
        try await asyncRead { db in
            guard try db.tableExists(ReverseLedger.table) else { return [:] }
            var out: [String: [ReverseLedger.State: Int]] = [:]
            for r in try Row.fetchAll(
                db, sql: "SELECT task_type, state, COUNT(*) FROM _taskbridge_reverse GROUP BY task_type, state")
            {
                if let s = ReverseLedger.State(rawValue: r[1]) { out[r[0], default: [:]][s] = r[2] }
            }
            return out
        }
    }

    /// Every entry of the given types with its row, for verify: one page.
    public struct ReverseItem: Sendable {
        public var entryID: Int64
        public var taskID: Int64
        public var legacyID: Int64
        public var taskType: String
        public var state: ReverseLedger.State
        public var paramsJSON: String?
        public var tmStatus: String?
        public var success: Bool?
        public var lastError: String?
        /// The row, when it is still the entry's row.
        public var row: LegacyRow?
        public var claimedAt: String
    }

    public func reverseEntries(types: [String], afterID: Int64, limit: Int) async throws -> [ReverseItem] {
        guard !types.isEmpty else { return [] }
        let select = LegacyRow.selectSQL(schema)
        return try await asyncRead { db in
            guard try db.tableExists(ReverseLedger.table) else { return [] }
            let entries = try Row.fetchAll(
                db,
                sql: """
                    SELECT id, tm_task_id, legacy_id, task_type, state, params_json, tm_status, success, last_error,
                        fingerprint, claimed_at
                    FROM _taskbridge_reverse
                    WHERE id > ? AND task_type IN (\(types.map { _ in "?" }.joined(separator: ",")))
                    ORDER BY id LIMIT ?
                    """, arguments: StatementArguments([afterID]) + StatementArguments(types) + [limit])
            let rows = try Self.rows(db, select: select, ids: entries.map { $0["legacy_id"] })
            var fingerprints: [Int64: String] = [:]
            for chunk in Self.chunks(entries.map { $0["legacy_id"] as Int64 }) {
                for r in try Row.fetchAll(
                    db,
                    sql: """
                        SELECT id, \(ReverseLedger.fingerprintSQL("q")) FROM \(self.table) q
                        WHERE id IN (\(chunk.map { _ in "?" }.joined(separator: ",")))
                        """, arguments: StatementArguments(chunk))
                {
                    fingerprints[r[0]] = r[1]
                }
            }
            return entries.map { e in
                let legacyID: Int64 = e["legacy_id"]
                let same = fingerprints[legacyID] == (e["fingerprint"] as String)
                return ReverseItem(
                    entryID: e["id"], taskID: e["tm_task_id"], legacyID: legacyID, taskType: e["task_type"],
                    state: ReverseLedger.State(rawValue: e["state"]) ?? .lost, paramsJSON: e["params_json"],
                    tmStatus: e["tm_status"], success: e["success"], lastError: e["last_error"],
                    row: same ? rows[legacyID] : nil, claimedAt: e["claimed_at"])
            }
        }
    }
}
