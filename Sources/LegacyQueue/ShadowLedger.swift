import Foundation
import GRDB

/// The shadow ledger (`mode = "shadow"`): for each sampled row of a type in
/// shadow, the TaskManager copy the bridge created and, once both sides
/// finished, the comparison of the two results. This type is the only writer
/// of `_taskbridge_shadow`; its DDL and the SQL of each transition are here,
/// each run inside the caller's write transaction.
///
/// ```
///   row inserted while its type is in shadow, in the sampled share
///        │  (recorded by capture, in the transaction that consumes the change)
///        ▼
///     intent ──TaskManager refused the copy (4xx)──► refused
///        │ the copy was created (or found: the params carry the row's
///        │ identity, so a re-send after a crash dedupes onto the same task)
///        ▼
///      sent ──no TaskManager worker finished it within shadow_timeout──► expired
///        │ both sides terminal
///        ▼
///    compared (outcome: matched, value, outcome, legacy_failed_only,
///              taskmanager_failed_only)
/// ```
///
/// Invariants, enforced here:
/// - One copy per row: the key is (generation, legacy id), recorded with
///   `INSERT OR IGNORE`, and the copy's params carry `marker` = origin:id, so
///   TaskManager's type+params dedupe makes every re-send the same task.
/// - A comparison is recorded once: only a `sent` entry moves to `compared` or
///   `expired`, in one UPDATE guarded by its state.
/// - The legacy side is read from the row of the entry's own generation only:
///   after the table was recreated, an old entry never compares against a new
///   row that reuses its id.
/// Guarded by `ShadowLedgerTests` and `ShadowTests`.
public enum ShadowLedger {
    public enum State: String, CaseIterable, Sendable {
        case intent, sent, compared, expired, refused
    }

    /// How a comparison came out. `value`: both completed, results differ;
    /// `outcome`: any other pair of terminal statuses that disagree.
    public enum Outcome: String, CaseIterable, Sendable {
        case matched, value, outcome
        case legacyFailedOnly = "legacy_failed_only"
        case taskManagerFailedOnly = "taskmanager_failed_only"
        case expired

        public var isMismatch: Bool { self != .matched && self != .expired }
    }

    public static let table = "_taskbridge_shadow"
    /// The params field of a shadow copy: `origin:legacy_id`, which no forward
    /// send carries, so a copy is never taken for the row's real task.
    public static let marker = "_taskbridge_shadow"

    static let ddl = """
        CREATE TABLE IF NOT EXISTS _taskbridge_shadow (generation INTEGER NOT NULL, legacy_id INTEGER NOT NULL,
            task_type TEXT NOT NULL, tm_type TEXT NOT NULL, params_json TEXT NOT NULL, priority INTEGER,
            state TEXT NOT NULL CHECK (state IN \(sqlList(State.allCases.map(\.rawValue)))),
            task_id INTEGER, created_at REAL NOT NULL, sent_at REAL, checked_at REAL NOT NULL DEFAULT 0,
            legacy_status TEXT, legacy_result TEXT, tm_status TEXT, tm_result TEXT,
            outcome TEXT CHECK (outcome IS NULL OR outcome IN \(sqlList(Outcome.allCases.map(\.rawValue)))),
            fields TEXT, compared_at REAL, cleared INTEGER NOT NULL DEFAULT 0, last_error TEXT,
            PRIMARY KEY (generation, legacy_id))
        """

    static let indexDDL = [
        "CREATE INDEX IF NOT EXISTS _taskbridge_shadow_state ON _taskbridge_shadow(state, checked_at)",
        "CREATE INDEX IF NOT EXISTS _taskbridge_shadow_done ON _taskbridge_shadow(task_type, compared_at)",
        "CREATE INDEX IF NOT EXISTS _taskbridge_shadow_task ON _taskbridge_shadow(task_id)",
    ]
    static let indexNames = ["_taskbridge_shadow_state", "_taskbridge_shadow_done", "_taskbridge_shadow_task"]

    static func sqlList(_ values: [String]) -> String {
        "(" + values.map { "'\($0)'" }.joined(separator: ",") + ")"
    }

    /// An entry's key: a row of one generation of the table.
    public struct Key: Sendable, Hashable {
        public var generation: Int64
        public var legacyID: Int64
        public init(generation: Int64, legacyID: Int64) {
            self.generation = generation
            self.legacyID = legacyID
        }
    }

    /// A copy to create.
    public struct Intent: Sendable, Equatable {
        public var key: Key
        public var taskType: String
        public var tmType: String
        public var paramsJSON: String
        public var priority: Int64?
    }

    /// A sent copy with what the legacy side shows now.
    public struct Pending: Sendable, Equatable {
        public var key: Key
        public var taskType: String
        public var taskID: Int64
        public var sentAt: Double
        /// Nil when the row is gone or belongs to another generation.
        public var legacyStatus: String?
        public var legacyResult: String?
        public var legacyError: String?
    }

    /// What a decided comparison records.
    public struct Comparison: Sendable, Equatable {
        public var outcome: Outcome
        public var legacyStatus: String?
        public var legacyResult: String?
        public var tmStatus: String?
        public var tmResult: String?
        /// JSON array of `{"path", "legacy", "taskmanager"}`, the differing fields.
        public var fieldsJSON: String?
        public init(
            outcome: Outcome, legacyStatus: String?, legacyResult: String?, tmStatus: String?, tmResult: String?,
            fieldsJSON: String?
        ) {
            self.outcome = outcome
            self.legacyStatus = legacyStatus
            self.legacyResult = legacyResult
            self.tmStatus = tmStatus
            self.tmResult = tmResult
            self.fieldsJSON = fieldsJSON
        }
    }

    /// Records a copy to create for row `legacyID`, if its type is in shadow
    /// and the row is in the sampled share (`Canary.shadowSampledSQL`, read
    /// from the row in this transaction). True if recorded now.
    static func recordSampled(
        _ db: Database, legacyTable: String, legacyID: Int64, taskType: String, tmType: String, paramsJSON: String,
        priority: Int64?, generation: Int64, now: Double
    ) throws -> Bool {
        try db.exec(
            sql: """
                INSERT OR IGNORE INTO _taskbridge_shadow (generation, legacy_id, task_type, tm_type, params_json,
                    priority, state, created_at)
                SELECT ?, q.id, ?, ?, ?, ?, 'intent', ? FROM \(legacyTable) q
                WHERE q.id = ? AND \(Canary.shadowSampledSQL("q"))
                """,
            arguments: [generation, taskType, tmType, paramsJSON, priority, now, legacyID])
        return db.changesCount > 0
    }

    static func intents(_ db: Database, limit: Int) throws -> [Intent] {
        try Row.fetchAll(
            db,
            sql: """
                SELECT generation, legacy_id, task_type, tm_type, params_json, priority FROM _taskbridge_shadow
                WHERE state = 'intent' ORDER BY created_at LIMIT ?
                """, arguments: [limit]
        ).map {
            Intent(
                key: Key(generation: $0[0], legacyID: $0[1]), taskType: $0[2], tmType: $0[3], paramsJSON: $0[4],
                priority: $0[5])
        }
    }

    /// intent -> sent, with the task TaskManager created or deduplicated onto.
    static func recordSent(_ db: Database, _ key: Key, taskID: Int64, at: Double) throws {
        try db.exec(
            sql: """
                UPDATE _taskbridge_shadow SET state = 'sent', task_id = ?, sent_at = ?, last_error = NULL
                WHERE generation = ? AND legacy_id = ? AND state = 'intent'
                """, arguments: [taskID, at, key.generation, key.legacyID])
    }

    /// intent -> refused: TaskManager answered that it will never take this copy.
    static func recordRefused(_ db: Database, _ key: Key, error: String) throws {
        try db.exec(
            sql: """
                UPDATE _taskbridge_shadow SET state = 'refused', last_error = ?
                WHERE generation = ? AND legacy_id = ? AND state = 'intent'
                """, arguments: [error, key.generation, key.legacyID])
    }

    /// Sent entries not looked at since `before`, oldest look first, with the
    /// legacy row of the current generation.
    static func pending(
        _ db: Database, legacyTable: String, hasResult: Bool, generation: Int64, before: Double, limit: Int
    ) throws -> [Pending] {
        let result = hasResult ? "CAST(q.result_data AS TEXT)" : "NULL"
        return try Row.fetchAll(
            db,
            sql: """
                SELECT s.generation, s.legacy_id, s.task_type, s.task_id, s.sent_at, CAST(q.status AS TEXT),
                    \(result), CAST(q.error_message AS TEXT), q.id IS NOT NULL
                FROM _taskbridge_shadow s
                LEFT JOIN \(legacyTable) q ON q.id = s.legacy_id AND s.generation = ?
                    AND q.task_type = s.task_type
                WHERE s.state = 'sent' AND s.checked_at <= ? ORDER BY s.checked_at, s.sent_at LIMIT ?
                """, arguments: [generation, before, limit]
        ).map {
            Pending(
                key: Key(generation: $0[0], legacyID: $0[1]), taskType: $0[2], taskID: $0[3], sentAt: $0[4],
                legacyStatus: $0[5], legacyResult: $0[6], legacyError: $0[7])
        }
    }

    static func recordChecked(_ db: Database, _ keys: [Key], at: Double) throws {
        for k in keys {
            try db.exec(
                sql: "UPDATE _taskbridge_shadow SET checked_at = ? WHERE generation = ? AND legacy_id = ?",
                arguments: [at, k.generation, k.legacyID])
        }
    }

    /// sent -> compared (or expired). True if this call recorded it.
    static func recordComparison(_ db: Database, _ key: Key, _ c: Comparison, at: Double) throws -> Bool {
        try db.exec(
            sql: """
                UPDATE _taskbridge_shadow SET state = ?, outcome = ?, legacy_status = ?, legacy_result = ?,
                    tm_status = ?, tm_result = ?, fields = ?, compared_at = ?, checked_at = ?
                WHERE generation = ? AND legacy_id = ? AND state = 'sent'
                """,
            arguments: [
                c.outcome == .expired ? State.expired.rawValue : State.compared.rawValue, c.outcome.rawValue,
                c.legacyStatus, c.legacyResult, c.tmStatus, c.tmResult, c.fieldsJSON, at, at, key.generation,
                key.legacyID,
            ])
        return db.changesCount > 0
    }

    /// Expired copies TaskManager may still hold as pending, by TaskManager type.
    static func uncleared(_ db: Database, limit: Int) throws -> [(tmType: String, taskID: Int64)] {
        try Row.fetchAll(
            db,
            sql: """
                SELECT tm_type, task_id FROM _taskbridge_shadow WHERE state = 'expired' AND cleared = 0
                    AND task_id IS NOT NULL ORDER BY compared_at LIMIT ?
                """, arguments: [limit]
        ).map { ($0[0], $0[1]) }
    }

    /// The copy is no longer pending in TaskManager (taken out by the bridge,
    /// or found finished or running).
    static func recordCleared(_ db: Database, taskIDs: [Int64]) throws {
        for id in taskIDs {
            try db.exec(sql: "UPDATE _taskbridge_shadow SET cleared = 1 WHERE task_id = ?", arguments: [id])
        }
    }

    /// Which of these task ids are copies the ledger knows, whatever their state.
    static func copies(_ db: Database, among ids: [Int64]) throws -> Set<Int64> {
        var out = Set<Int64>()
        for chunk in LegacyQueueStore.chunks(ids) {
            let marks = chunk.map { _ in "?" }.joined(separator: ",")
            out.formUnion(
                try Int64.fetchAll(
                    db, sql: "SELECT task_id FROM _taskbridge_shadow WHERE task_id IN (\(marks))",
                    arguments: StatementArguments(chunk)))
        }
        return out
    }
}
