import Foundation
import GRDB
import SQLiteText
import TaskManagerModel

/// The reverse ledger (`mode = "reverse"`: TaskManager producers, legacy
/// workers): the bridge's record of every TaskManager task it claimed and
/// turned into a legacy row, and of the way back. This type is the only writer
/// of `_taskbridge_reverse`; the DDL and the SQL of each transition come from
/// here, each inside the caller's write transaction.
///
/// ```
///  task claimed (or found held by the bridge, without a row)
///        │  row inserted in the same transaction
///        ▼
///     inserted ──row gone or another row──► lost (the task gets a new row)
///        │ the legacy row is terminal (result, error copied here)
///        ▼
///    completing ──403 re-claimed by another worker / 404──► conflict
///        │ TaskManager took the completion (or already had it)
///        ▼
///       done
/// ```
///
/// Invariants, enforced here:
/// - One row per claim: at most one live (`inserted`/`completing`) entry per
///   task, by a unique partial index, so a task claimed again (an expired
///   lease) or found again by the adoption sweep is recognised, and a crash
///   between claim and insert leaves the task for the sweep, never two rows.
/// - A completion is recorded before it is sent (`completing`), so a crash
///   between the legacy result and the API call repeats the call.
/// - An entry applies only to its row: the fingerprint (type and the
///   `created_at` the bridge wrote, to the microsecond) guards every read.
public enum ReverseLedger {
    public enum State: String, CaseIterable, Sendable {
        case inserted, completing, done, lost, conflict
        public static let live: [State] = [.inserted, .completing]
        /// `live` as an SQL list, for `state IN (...)`.
        static let liveSQL = live.map { "'\($0.rawValue)'" }.joined(separator: ",")
    }

    public static let table = "_taskbridge_reverse"

    static let ddl = """
        CREATE TABLE IF NOT EXISTS _taskbridge_reverse (id INTEGER PRIMARY KEY AUTOINCREMENT,
            tm_task_id INTEGER NOT NULL, legacy_id INTEGER NOT NULL, task_type TEXT NOT NULL, tm_type TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('inserted','completing','done','lost','conflict')),
            params_json TEXT, fingerprint TEXT NOT NULL, claimed_at TEXT NOT NULL, claims INTEGER NOT NULL DEFAULT 1,
            success INTEGER, result_data TEXT, error_message TEXT, tm_status TEXT,
            attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at REAL NOT NULL DEFAULT 0, last_error TEXT,
            created_at TEXT NOT NULL, updated_at TEXT NOT NULL, done_at TEXT)
        """

    static let indexDDL = [
        """
        CREATE UNIQUE INDEX IF NOT EXISTS _taskbridge_reverse_task ON _taskbridge_reverse(tm_task_id)
            WHERE state IN ('inserted','completing')
        """,
        "CREATE INDEX IF NOT EXISTS _taskbridge_reverse_state ON _taskbridge_reverse(state, next_attempt_at)",
    ]
    static let indexNames = ["_taskbridge_reverse_task", "_taskbridge_reverse_state"]

    static func fingerprintSQL(_ alias: String) -> String {
        "(COALESCE(CAST(\(alias).task_type AS TEXT),'') || char(1) || COALESCE(CAST(\(alias).created_at AS TEXT),''))"
    }

    /// A task as the bridge got it from a claim (or a read of a task it holds).
    public struct Claimed: Sendable, Equatable {
        public var taskID: Int64
        public var params: JSONValue
        public var priority: Int64
        public init(taskID: Int64, params: JSONValue, priority: Int64) {
            self.taskID = taskID
            self.params = params
            self.priority = priority
        }
    }

    public enum InsertOutcome: Sendable, Equatable {
        /// A new queued row for the task.
        case inserted(legacyID: Int64)
        /// The bridge already holds a row for this task (a lease that expired
        /// and was claimed again, or an adoption sweep meeting a known task).
        case recognised(legacyID: Int64)
    }

    /// Whether any entry is live: a row waiting for a legacy worker, or an
    /// outcome TaskManager has not accepted yet (due now or later).
    static func anyLive(_ db: Database) throws -> Bool {
        try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM \(table) WHERE state IN (\(State.liveSQL)))") ?? false
    }

    /// Tasks with a live entry.
    static func liveTasks(_ db: Database) throws -> Set<Int64> {
        Set(try Int64.fetchAll(db, sql: "SELECT tm_task_id FROM \(table) WHERE state IN (\(State.liveSQL))"))
    }

    /// TaskManager priority (higher first, 0 when none was given: the live
    /// server ignores it on create) onto legacy 1..10 (higher first, 5 by
    /// default, as BaseWorker defaults a missing priority).
    public static func legacyPriority(_ p: Int64) -> Int64 { p <= 0 ? 5 : min(10, max(1, p)) }

    /// none -> inserted, or a live entry recognised. The row is written as a
    /// Python producer writes it: JSON text (`json.dumps`), an ISO-8601 UTC
    /// timestamp with microseconds, status `queued`. Runs inside the store's
    /// echo-flagged `write`, so the insert trigger does not capture it.
    static func insert(
        _ db: Database, task: Claimed, legacyType: String, tmType: String, legacyTable: String
    ) throws -> InsertOutcome {
        let now = LegacyTimestamp.format(Date())
        if let held = try Int64.fetchOne(
            db.cachedStatement(
                sql: """
                    SELECT legacy_id FROM _taskbridge_reverse
                    WHERE tm_task_id = ? AND state IN (\(State.liveSQL))
                    """), arguments: [task.taskID])
        {
            try db.exec(
                sql: """
                    UPDATE _taskbridge_reverse SET claims = claims + 1, claimed_at = ?, updated_at = ?
                    WHERE tm_task_id = ? AND state IN (\(State.liveSQL))
                    """, arguments: [now, now, task.taskID])
            return .recognised(legacyID: held)
        }
        let parameters = PythonJSON.dumps(task.params)
        let id = try LegacyRows.insertQueued(
            db, table: legacyTable, taskType: legacyType, parameters: parameters,
            priority: legacyPriority(task.priority), now: now)
        // `fingerprintSQL` of the row just written, without reading it back.
        let fingerprint = legacyType + "\u{1}" + now
        try db.exec(
            sql: """
                INSERT INTO _taskbridge_reverse (tm_task_id, legacy_id, task_type, tm_type, state, params_json,
                    fingerprint, claimed_at, created_at, updated_at) VALUES (?, ?, ?, ?, 'inserted', ?, ?, ?, ?, ?)
                """,
            arguments: [task.taskID, id, legacyType, tmType, PHPJSON.encode(task.params), fingerprint, now, now, now])
        return .inserted(legacyID: id)
    }

    public struct Outcome: Sendable, Equatable {
        public var entryID: Int64
        public var taskID: Int64
        public var legacyID: Int64
        public var taskType: String
        public var success: Bool
        public var resultData: String?
        public var error: String?
    }

    /// inserted -> completing (the row is terminal: its outcome is copied
    /// into the entry before any call), or inserted -> lost (the row is gone
    /// or is another row). Returns what changed.
    static func collectOutcomes(_ db: Database, legacyTable: String) throws -> (completing: Int, lost: [Int64]) {
        let rows = try Row.fetchAll(
            db.cachedStatement(
                sql: """
                    SELECT r.id, r.tm_task_id, r.fingerprint, q.id AS qid, q.status, q.result_data,
                        CAST(q.error_message AS BLOB) AS err, \(fingerprintSQL("q")) AS fp
                    FROM _taskbridge_reverse r LEFT JOIN \(legacyTable) q ON q.id = r.legacy_id
                    WHERE r.state = 'inserted'
                    """))
        let now = LegacyTimestamp.format(Date())
        var completing = 0
        var lost: [Int64] = []
        for r in rows {
            let entryID: Int64 = r["id"]
            let rowID: Int64? = r["qid"]
            if rowID == nil || (r["fp"] as String?) != (r["fingerprint"] as String) {
                try db.exec(
                    sql:
                        "UPDATE _taskbridge_reverse SET state = 'lost', updated_at = ? WHERE id = ? "
                        + "AND state = 'inserted'",
                    arguments: [now, entryID])
                lost.append(r["tm_task_id"])
                continue
            }
            guard let status = LegacyStatus(text: r["status"]), status.isTerminal else { continue }
            let error: String? =
                status == .completed
                ? nil : (SQLiteText.decode(r["err"]) ?? (status == .cancelled ? "cancelled in SQLite" : nil))
            try db.exec(
                sql: """
                    UPDATE _taskbridge_reverse SET state = 'completing', success = ?, result_data = ?,
                        error_message = CAST(? AS TEXT), next_attempt_at = 0, updated_at = ?
                    WHERE id = ? AND state = 'inserted'
                    """,
                arguments: [status == .completed, r["result_data"] as String?, SQLiteText.bind(error), now, entryID])
            completing += 1
        }
        return (completing, lost)
    }

    /// Completions due now, oldest first.
    static func due(_ db: Database, now: Double, limit: Int) throws -> [Outcome] {
        try Row.fetchAll(
            db.cachedStatement(
                sql: """
                    SELECT id, tm_task_id, legacy_id, task_type, success, result_data,
                        CAST(error_message AS BLOB) AS error
                    FROM _taskbridge_reverse WHERE state = 'completing' AND next_attempt_at <= ? ORDER BY id LIMIT ?
                    """), arguments: [now, limit]
        ).map {
            Outcome(
                entryID: $0["id"], taskID: $0["tm_task_id"], legacyID: $0["legacy_id"], taskType: $0["task_type"],
                success: $0["success"], resultData: $0["result_data"], error: SQLiteText.decode($0["error"]))
        }
    }

    /// completing -> done: TaskManager has the outcome (`tm_status` is what it answered).
    static func recordCompleted(_ db: Database, entryID: Int64, tmStatus: String) throws {
        let now = LegacyTimestamp.format(Date())
        try db.exec(
            sql: """
                UPDATE _taskbridge_reverse SET state = 'done', tm_status = ?, done_at = ?, updated_at = ?,
                    attempts = attempts + 1, last_error = NULL
                WHERE id = ? AND state = 'completing'
                """, arguments: [tmStatus, now, now, entryID])
    }

    /// completing -> completing: a transient failure, tried again later.
    static func recordRetry(_ db: Database, entryID: Int64, error: String, nextAttemptAt: Double) throws {
        try db.exec(
            sql: """
                UPDATE _taskbridge_reverse SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?,
                    updated_at = ? WHERE id = ? AND state = 'completing'
                """, arguments: [error, nextAttemptAt, LegacyTimestamp.format(Date()), entryID])
    }

    /// completing -> conflict: TaskManager will never take this completion
    /// (the task was claimed again by another worker, or is gone). Terminal:
    /// shown in status and verify, never retried.
    static func recordConflict(_ db: Database, entryID: Int64, detail: String) throws {
        let now = LegacyTimestamp.format(Date())
        try db.exec(
            sql: """
                UPDATE _taskbridge_reverse SET state = 'conflict', last_error = ?, done_at = ?, updated_at = ?,
                    attempts = attempts + 1
                WHERE id = ? AND state = 'completing'
                """, arguments: [detail, now, now, entryID])
    }
}

/// Python's `json.dumps` with its defaults (`", "` and `": "` separators,
/// `ensure_ascii=True`): the text PrismQ producers write into `parameters`.
public enum PythonJSON {
    public static func dumps(_ v: JSONValue) -> String {
        var out = ""
        write(v, into: &out)
        return out
    }

    static func write(_ v: JSONValue, into out: inout String) {
        switch v {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .double(let d):
            if d.isNaN {
                out += "NaN"
            } else if d.isInfinite {
                out += d < 0 ? "-Infinity" : "Infinity"
            } else {
                out += "\(d)"
            }
        case .string(let s): string(s, into: &out)
        case .array(let a):
            out += "["
            for (i, e) in a.enumerated() {
                if i > 0 { out += ", " }
                write(e, into: &out)
            }
            out += "]"
        case .object(let m):
            out += "{"
            for (i, e) in m.enumerated() {
                if i > 0 { out += ", " }
                string(e.key, into: &out)
                out += ": "
                write(e.value, into: &out)
            }
            out += "}"
        }
    }

    static func string(_ s: String, into out: inout String) {
        out += "\""
        for u in s.utf16 {
            switch u {
            case 0x22: out += "\\\""
            case 0x5C: out += "\\\\"
            case 0x0A: out += "\\n"
            case 0x0D: out += "\\r"
            case 0x09: out += "\\t"
            case 0x08: out += "\\b"
            case 0x0C: out += "\\f"
            case 0x20..<0x7F: out.unicodeScalars.append(Unicode.Scalar(UInt8(u)))
            default:
                let hex = String(u, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            }
        }
        out += "\""
    }
}
