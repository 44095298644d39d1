import Foundation
import GRDB
import SQLiteText
import TaskManagerModel

/// The write-ahead ledger: the bridge's record of every legacy row it holds,
/// its states, and every transition between them. This type is the only
/// writer of `_taskbridge_ledger`, `_taskbridge_ledger_archive` and
/// `_taskbridge_quarantine`; the DDL, the CHECK constraint and the SQL of each
/// transition come from here. Each transition runs inside the caller's write
/// transaction (`LegacyQueueStore.write`) and states its invariant where it is
/// enforced, with the test that pins it down.
///
/// ```
///               capture (row claimed by the bridge)
///                 │                    │ refused (bad params, unknown type)
///                 ▼                    ▼
///  retry ──►  intent ──refused──► quarantined ──release──► (gone: capture decides again)
///   └─────────┘  │
///                │ accepted (task id)
///                ▼
///               sent ──terminal mirrored──► done
///                ▲ └─────────────┐            │
///                └── reopen ─────┴────────────┘ (row changed behind the bridge)
///
///  any live state ──row replaced, re-queued, new generation──► archived
/// ```
///
/// Invariant 9 (PRODUCT.md): an entry applies only to the row it was made for.
/// Each entry keeps the row's fingerprint (type, `created_at`, `claimed_at`:
/// the bridge's own claim time, to the microsecond); every write into
/// `task_queue` on behalf of an entry is guarded by it, and an entry whose row
/// is gone or is another row is archived, never applied.
public enum Ledger {
    public enum State: String, CaseIterable, Sendable {
        /// Captured; params recorded; not yet accepted by TaskManager.
        case intent
        /// TaskManager has a task for the row; not yet terminal in the row.
        case sent
        /// The row shows its task's terminal state.
        case done
        /// Refused with a reason; the row stays claimed by the bridge.
        case quarantined
        /// Moved to `_taskbridge_ledger_archive`: kept for verify and export,
        /// never applied again.
        case archived

        /// States of `_taskbridge_ledger` itself (archived entries live apart).
        public static let live: [State] = [.intent, .sent, .done, .quarantined]
    }

    /// Why an entry left the live ledger.
    public enum ArchiveReason: String, Sendable {
        /// The row with this id is another row (the table was recreated or
        /// restored, ids reused).
        case replaced
        /// The row was put back to `queued`: it is captured again as new.
        case requeued
        /// The table lost continuity (see `Continuity`); a new generation began.
        case newGeneration = "new_generation"

    }

    public static let table = "_taskbridge_ledger"
    public static let archiveTable = "_taskbridge_ledger_archive"
    public static let quarantineTable = "_taskbridge_quarantine"

    /// The row's fingerprint as SQL over `task_queue` columns (qualified by
    /// `alias` when given). Computed by SQLite on both sides, so a timestamp
    /// stored as a number compares the same way it was recorded.
    public static func fingerprintSQL(_ alias: String? = nil) -> String {
        let p = alias.map { "\($0)." } ?? ""
        return "(COALESCE(CAST(\(p)task_type AS TEXT),'') || char(1) || COALESCE(CAST(\(p)created_at AS TEXT),'') "
            + "|| char(1) || COALESCE(CAST(\(p)claimed_at AS TEXT),''))"
    }

    // MARK: - Schema

    /// Columns after `legacy_id`, shared by the live table and the archive.
    static let columns: [(name: String, definition: String)] = [
        ("task_type", "TEXT NOT NULL"), ("tm_type", "TEXT NOT NULL"), ("state", "TEXT NOT NULL"),
        ("params_json", "TEXT"),
        ("dedupe_key", "TEXT"), ("priority", "INTEGER"), ("due_at", "REAL NOT NULL DEFAULT 0"),
        ("tm_task_id", "INTEGER"),
        ("tm_status", "TEXT"), ("collapsed", "INTEGER NOT NULL DEFAULT 0"), ("attempts", "INTEGER NOT NULL DEFAULT 0"),
        ("next_attempt_at", "REAL NOT NULL DEFAULT 0"), ("last_error", "TEXT"), ("claimed_at", "TEXT NOT NULL"),
        ("sent_at", "TEXT"), ("done_at", "TEXT"), ("updated_at", "TEXT NOT NULL"),
        ("error_streak", "INTEGER NOT NULL DEFAULT 0"), ("streak_started_at", "REAL"),
        ("generation", "INTEGER NOT NULL DEFAULT 1"), ("fingerprint", "TEXT"),
    ]

    static func stateCheck(_ states: [State]) -> String {
        "CHECK (state IN (" + states.map { "'\($0.rawValue)'" }.joined(separator: ",") + "))"
    }

    static var tableDDL: String {
        let cols = columns.map {
            $0.name == "state" ? "state TEXT NOT NULL \(stateCheck(State.live))" : "\($0.name) \($0.definition)"
        }
        return "CREATE TABLE IF NOT EXISTS \(table) (\n    legacy_id INTEGER PRIMARY KEY,\n    "
            + cols.joined(separator: ",\n    ") + ")"
    }

    static var archiveDDL: String {
        let cols = columns.map {
            $0.name == "state" ? "state TEXT NOT NULL \(stateCheck(State.live))" : "\($0.name) \($0.definition)"
        }
        return "CREATE TABLE IF NOT EXISTS \(archiveTable) (\n    archive_id INTEGER PRIMARY KEY AUTOINCREMENT,\n"
            + "    archived_at TEXT NOT NULL,\n    archive_reason TEXT NOT NULL,\n    legacy_id INTEGER NOT NULL,\n    "
            + cols.joined(separator: ",\n    ") + ")"
    }

    static let quarantineDDL = """
        CREATE TABLE IF NOT EXISTS _taskbridge_quarantine (legacy_id INTEGER PRIMARY KEY, task_type TEXT NOT NULL,
            reason TEXT NOT NULL, detail TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 1,
            first_at TEXT NOT NULL, last_at TEXT NOT NULL)
        """

    static let indexDDL = [
        "CREATE INDEX IF NOT EXISTS _taskbridge_ledger_state ON _taskbridge_ledger(state, next_attempt_at)",
        "CREATE INDEX IF NOT EXISTS _taskbridge_ledger_task ON _taskbridge_ledger(tm_task_id)",
        "CREATE INDEX IF NOT EXISTS _taskbridge_ledger_type ON _taskbridge_ledger(task_type, state)",
        // The mirror's candidate queries: claimed / terminal / queue edges of in-flight rows.
        "CREATE INDEX IF NOT EXISTS _taskbridge_ledger_sent ON _taskbridge_ledger(state, tm_status, tm_task_id)",
        "CREATE INDEX IF NOT EXISTS _taskbridge_ledger_archive_task ON _taskbridge_ledger_archive(tm_task_id)",
    ]
    static let indexNames = [
        "_taskbridge_ledger_state", "_taskbridge_ledger_task", "_taskbridge_ledger_type", "_taskbridge_ledger_sent",
        "_taskbridge_ledger_archive_task",
    ]

    /// Columns added after a table's first release (see `BridgeObjects.install`).
    static let addedColumns: [(table: String, column: String, definition: String)] = [
        (table, "error_streak", "INTEGER NOT NULL DEFAULT 0"), (table, "streak_started_at", "REAL"),
        (table, "generation", "INTEGER NOT NULL DEFAULT 1"), (table, "fingerprint", "TEXT"),
    ]

    /// What `LedgerEntry(row:)` reads, in its order: entries are decoded by
    /// position (a lookup by name lowercases the name for every column of
    /// every row, which showed in profiles of the send loop).
    static let entryColumnNames = [
        "legacy_id", "task_type", "tm_type", "state", "params_json", "dedupe_key", "priority", "due_at", "tm_task_id",
        "tm_status", "collapsed", "attempts", "next_attempt_at", "last_error", "claimed_at", "updated_at",
        "error_streak",
        "streak_started_at", "generation", "fingerprint",
    ]
    public static let entryColumns = entryColumnNames.joined(separator: ", ")
    static func entryColumns(_ alias: String) -> String {
        entryColumnNames.map { "\(alias).\($0)" }.joined(separator: ", ")
    }

    static var columnList: String { (["legacy_id"] + columns.map(\.name)).joined(separator: ", ") }

    // MARK: - Generation

    /// The current generation (`_taskbridge_meta.generation`, 1 when unset).
    public static func generation(_ db: Database) throws -> Int64 {
        try Int64.fetchOne(
            db.cachedStatement(sql: "SELECT CAST(value AS INTEGER) FROM _taskbridge_meta WHERE key = 'generation'"))
            ?? 1
    }

    /// Entries made before fingerprints existed get the fingerprint of the
    /// row that holds their id now, the best knowledge there is: a live entry
    /// was made for the row it names unless the table changed before the
    /// upgrade. Runs inside `install`; rows that are gone leave it NULL.
    static func backfillFingerprints(_ db: Database, legacyTable: String) throws {
        try db.execute(
            sql: """
                UPDATE _taskbridge_ledger SET fingerprint = (
                    SELECT \(fingerprintSQL("q")) FROM \(legacyTable) q WHERE q.id = _taskbridge_ledger.legacy_id)
                WHERE fingerprint IS NULL
                """)
    }

    /// The origin of the current generation (`_taskbridge_meta.origin`): a
    /// random id made at install and made anew with every generation, so that
    /// (origin, legacy id) names one row of one queue file across every
    /// queue, host and generation of its table (invariant 10). `per-row`
    /// params carry it beside the legacy id. Nil only before install.
    public static func origin(_ db: Database) throws -> String? {
        try String.fetchOne(db.cachedStatement(sql: "SELECT value FROM _taskbridge_meta WHERE key = 'origin'"))
    }

    /// A fresh origin: 128 random bits, never derived from the path, host or
    /// id, which a copied or restored file shares with its source.
    static func newOrigin() -> String {
        "q" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
    }

    static func setOrigin(_ db: Database, _ origin: String) throws {
        try db.exec(
            sql: """
                INSERT INTO _taskbridge_meta (key, value) VALUES ('origin', ?) ON CONFLICT(key) DO UPDATE SET \
                value = excluded.value
                """,
            arguments: [origin])
        // Every origin the file ever had, for verify: a task carrying one of
        // them was made for a row of this file, whatever became of the row.
        try db.exec(
            sql: "INSERT OR IGNORE INTO _taskbridge_meta (key, value) VALUES (?, ?)",
            arguments: ["origin:" + origin, LegacyTimestamp.format(Date())])
    }

    /// Every origin this file had (current and earlier generations).
    public static func knownOrigins(_ db: Database) throws -> Set<String> {
        Set(
            try String.fetchAll(
                db, sql: "SELECT substr(key, 8) FROM _taskbridge_meta WHERE key LIKE 'origin:%'"))
    }

    /// Decisions made with `origin` apply only while it is still the
    /// generation's origin: a generation that began between the read and
    /// the write would otherwise give a row the identity of an older table.
    static func originHolds(_ db: Database, _ origin: String?) throws -> Bool {
        try Self.origin(db) == origin
    }

    // MARK: - Transitions

    /// What capture records for a row the bridge holds.
    public struct Intent: Sendable, Equatable {
        public var tmType: String
        /// The wire form of the params (what is sent, as validated).
        public var paramsJSON: String
        /// PHP's dedupe key for them.
        public var dedupeKey: String
        public var priority: Int64?
        public var dueAt: Double

        public init(tmType: String, paramsJSON: String, dedupeKey: String, priority: Int64?, dueAt: Double) {
            self.tmType = tmType
            self.paramsJSON = paramsJSON
            self.dedupeKey = dedupeKey
            self.priority = priority
            self.dueAt = dueAt
        }
    }

    /// none -> intent. Only for a row the bridge holds (`claimed` or `running`
    /// by it) that has no live entry; the fingerprint is the row's now, in the
    /// same transaction. Returns false when an entry already exists.
    /// Guarded by `LedgerTests.rowChangedBetweenReadAndWriteIsDecidedAgain` and `CrashTests`.
    static func recordIntent(_ db: Database, row: LegacyRow, intent: Intent, generation: Int64) throws -> Bool {
        precondition(row.fingerprint != nil, "recordIntent for a row read without its fingerprint")
        let now = LegacyTimestamp.format(Date())
        try db.exec(
            sql: """
                INSERT OR IGNORE INTO _taskbridge_ledger (legacy_id, task_type, tm_type, state, params_json,
                    dedupe_key, priority,
                    due_at, claimed_at, updated_at, generation, fingerprint) VALUES (?, ?, ?, 'intent', ?, ?, ?, ?, ?,
                        ?, ?, ?)
                """,
            arguments: [
                row.id, row.taskType, intent.tmType, intent.paramsJSON, intent.dedupeKey, intent.priority, intent.dueAt,
                row.claimedAt ?? now, now, generation, row.fingerprint,
            ])
        return db.changesCount > 0
    }

    /// none -> quarantined (refused at capture), or intent -> quarantined
    /// (refused by TaskManager: only from `intent`, so a late answer never
    /// quarantines a row another send has placed). The row stays claimed by
    /// the bridge and shows the reason in `error_message`.
    /// Guarded by `EdgeTests` (each reason) and `LedgerTests.resendIsNotACollapse` (its late refusal).
    static func recordQuarantine(
        _ db: Database, row: LegacyRow?, legacyID: Int64, taskType: String, code: String, detail: String,
        generation: Int64, bridgeID: String, legacyTable: String
    ) throws -> Bool {
        let now = LegacyTimestamp.format(Date())
        let state = try String.fetchOne(
            db.cachedStatement(sql: "SELECT state FROM _taskbridge_ledger WHERE legacy_id = ?"),
            arguments: [legacyID])
        switch state {
        case nil:
            guard let row else { return false }
            try db.exec(
                sql: """
                    INSERT INTO _taskbridge_ledger (legacy_id, task_type, tm_type, state, claimed_at, updated_at,
                        last_error,
                        generation, fingerprint) VALUES (?, ?, '', 'quarantined', ?, ?, ?, ?, ?)
                    """,
                arguments: [legacyID, taskType, row.claimedAt ?? now, now, detail, generation, row.fingerprint])
        case State.intent.rawValue:
            try db.exec(
                sql:
                    """
                    UPDATE _taskbridge_ledger SET state = 'quarantined', last_error = ?, updated_at = ? WHERE \
                    legacy_id = ?
                    """,
                arguments: [detail, now, legacyID])
        default:
            return false
        }
        try db.exec(
            sql: """
                INSERT INTO _taskbridge_quarantine (legacy_id, task_type, reason, detail, attempts, first_at, last_at)
                VALUES (?, ?, ?, ?, 1, ?, ?)
                ON CONFLICT(legacy_id) DO UPDATE SET reason = excluded.reason, detail = excluded.detail,
                    attempts = attempts + 1, last_at = excluded.last_at
                """,
            arguments: [legacyID, taskType, code, detail, now, now])
        try LegacyRows.noteQuarantine(
            db, table: legacyTable, id: legacyID, bridgeID: bridgeID,
            text: "taskbridge quarantine (\(code)): \(detail)",
            now: now, guardSQL: fingerprintGuard)
        return true
    }

    /// The guard on every `task_queue` write made for an entry: the row is
    /// still the one the entry was made for. Entries from before fingerprints
    /// (NULL) match any row. Takes the legacy id as its one argument.
    static let fingerprintGuard =
        """
        COALESCE((SELECT fingerprint FROM _taskbridge_ledger WHERE legacy_id = ?), \(fingerprintSQL())) = \
        \(fingerprintSQL())
        """

    /// intent -> sent. A row leaves `intent` only with the task id TaskManager
    /// returned for exactly the params recorded at capture. It is a collapse
    /// only when the task was first created for another row: an answer
    /// `deduplicated` onto a task no other row holds is this row's own re-send
    /// (a crash, a lost answer, a re-queue), not a collapse. When a row that
    /// created its task is recorded after rows that found it, those are the
    /// collapses. Returns the rows newly counted as collapsed, or nil when the
    /// entry was not an intent (a late answer: nothing changes).
    /// Guarded by `LedgerTests.resendIsNotACollapse` and `ParityTests`.
    static func recordSent(
        _ db: Database, legacyID: Int64, taskID: Int64, status: String, deduplicated: Bool,
        nextCheckAt: Double
    ) throws -> Int? {
        let now = LegacyTimestamp.format(Date())
        guard
            let row = try Row.fetchOne(
                db.cachedStatement(sql: "SELECT state, generation FROM _taskbridge_ledger WHERE legacy_id = ?"),
                arguments: [legacyID]),
            row["state"] as String == State.intent.rawValue
        else { return nil }
        let generation: Int64 = row["generation"]
        var collapsed = false
        if deduplicated {
            // Another row holds the task: live, or archived as another row (a
            // re-queued incarnation of this same row does not count).
            collapsed =
                try Bool.fetchOne(
                    db.cachedStatement(
                        sql: """
                            SELECT EXISTS (SELECT 1 FROM _taskbridge_ledger WHERE tm_task_id = ?1 AND legacy_id <> ?2)
                                OR EXISTS (SELECT 1 FROM _taskbridge_ledger_archive WHERE tm_task_id = ?1
                                           AND NOT (legacy_id = ?2 AND generation = ?3 AND archive_reason = 'requeued'))
                            """), arguments: [taskID, legacyID, generation]) ?? false
        }
        try db.exec(
            sql: """
                UPDATE _taskbridge_ledger SET state = 'sent', tm_task_id = ?, tm_status = ?, collapsed = ?, sent_at = ?,
                    updated_at = ?, attempts = attempts + 1, next_attempt_at = ?, last_error = NULL, error_streak = 0,
                    streak_started_at = NULL
                WHERE legacy_id = ? AND state = 'intent'
                """,
            arguments: [taskID, status, collapsed ? 1 : 0, now, now, nextCheckAt, legacyID])
        var newlyCollapsed = collapsed ? 1 : 0
        if !deduplicated {
            // This row created the task; live rows that found it first are its collapses.
            try db.exec(
                sql:
                    """
                    UPDATE _taskbridge_ledger SET collapsed = 1 WHERE tm_task_id = ? AND legacy_id <> ? AND collapsed \
                    = 0
                    """,
                arguments: [taskID, legacyID])
            newlyCollapsed += db.changesCount
        }
        return newlyCollapsed
    }

    /// intent -> intent: a failed send, with its next attempt and the run of
    /// identical server errors (`SendPolicy`'s evidence). Only from `intent`.
    static func recordRetry(
        _ db: Database, legacyID: Int64, error: String, nextAttemptAt: Double, errorStreak: Int64,
        streakStartedAt: Double?
    ) throws {
        try db.exec(
            sql: """
                UPDATE _taskbridge_ledger SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?, updated_at
                    = ?,
                    error_streak = ?, streak_started_at = ?
                WHERE legacy_id = ? AND state = 'intent'
                """,
            arguments: [error, nextAttemptAt, LegacyTimestamp.format(Date()), errorStreak, streakStartedAt, legacyID])
    }

    /// intent -> intent: every backoff ends now (the API is back).
    static func endBackoff(_ db: Database) throws {
        try db.exec(
            sql: "UPDATE _taskbridge_ledger SET next_attempt_at = 0 WHERE state = 'intent' AND next_attempt_at > 0")
    }

    /// What the mirror saw of a row's task.
    public struct Observation: Sendable, Equatable {
        public var legacyID: Int64
        public var tmStatus: String
        public var attempts: Int64?
        public var result: JSONValue?
        public var error: String?
        /// When to look again if the task is not terminal.
        public var nextCheckAt: Double

        public init(
            legacyID: Int64, tmStatus: String, attempts: Int64?, result: JSONValue?, error: String?, nextCheckAt: Double
        ) {
            self.legacyID = legacyID
            self.tmStatus = tmStatus
            self.attempts = attempts
            self.result = result
            self.error = error
            self.nextCheckAt = nextCheckAt
        }
    }

    public enum MirrorEffect: Sendable, Equatable {
        /// The row shows the task's state; `terminal`: the entry is `done`.
        case applied(terminal: Bool)
        /// The entry is not `sent` any more, or the status has no legacy form.
        case skipped
        /// The row is another row now: the entry was archived, not applied.
        case archived
    }

    /// sent -> sent (in progress shown) or sent -> done (terminal mirrored).
    /// The row write is guarded by `status IN ('claimed','running')`, so a
    /// terminal row never regresses (invariant 4), and by the fingerprint, so
    /// an entry never writes into another row (invariant 9): such an entry is
    /// archived. A row deleted or finished behind the bridge ends the entry.
    /// Guarded by `LedgerTests.recreatedQueueNeverGetsOldResults` and `ForwardMirrorTests`.
    static func recordMirror(
        _ db: Database, _ o: Observation, schema: LegacySchema, bridgeID: String,
        legacyTable: String
    ) throws -> MirrorEffect {
        guard let legacy = LegacyStatus.mirroring(taskManagerStatus: o.tmStatus) else { return .skipped }
        guard
            let entry = try Row.fetchOne(
                db.cachedStatement(sql: "SELECT state, fingerprint FROM _taskbridge_ledger WHERE legacy_id = ?"),
                arguments: [o.legacyID]),
            entry["state"] as String == State.sent.rawValue
        else { return .skipped }
        let now = LegacyTimestamp.format(Date())
        let current = try Row.fetchOne(
            db.cachedStatement(
                sql: "SELECT status, claimed_by, \(fingerprintSQL()) AS fp FROM \(legacyTable) WHERE id = ?"),
            arguments: [o.legacyID])
        if let current, let fp: String = entry["fingerprint"], current["fp"] as String? != fp {
            try archive(db, legacyID: o.legacyID, reason: .replaced)
            return .archived
        }
        let changed = try LegacyRows.mirror(
            db, table: legacyTable, id: o.legacyID, bridgeID: bridgeID, status: legacy, attempts: o.attempts,
            retryColumns: schema.hasRetryColumns, result: o.result, error: o.error, now: now)
        // The row's status now, without reading it again: the update's, or the
        // one read above when the guard kept the row as it was.
        let statusNow = changed ? legacy.rawValue : current?["status"] as String?
        // A deleted row has nothing left to mirror; a row finished behind the bridge neither.
        let rowTerminal = LegacyStatus(text: statusNow)?.isTerminal ?? true
        if legacy.isTerminal || rowTerminal {
            try db.exec(
                sql:
                    """
                    UPDATE _taskbridge_ledger SET state = 'done', tm_status = ?, done_at = ?, updated_at = ? WHERE \
                    legacy_id = ? AND state = 'sent'
                    """,
                arguments: [o.tmStatus, now, now, o.legacyID])
            return .applied(terminal: true)
        }
        try db.exec(
            sql:
                """
                UPDATE _taskbridge_ledger SET tm_status = ?, next_attempt_at = ?, updated_at = ? WHERE legacy_id = ? \
                AND state = 'sent'
                """,
            arguments: [o.tmStatus, o.nextCheckAt, now, o.legacyID])
        return .applied(terminal: false)
    }

    /// done -> sent, sent -> sent: the row was changed behind the bridge; the
    /// mirror looks again at once (and restores a terminal state).
    static func reopen(_ db: Database, legacyID: Int64) throws {
        try db.exec(
            sql: """
                UPDATE _taskbridge_ledger SET next_attempt_at = 0, state = CASE WHEN state = 'done' THEN 'sent' ELSE
                    state END
                WHERE legacy_id = ? AND state IN ('sent','done')
                """,
            arguments: [legacyID])
    }

    /// quarantined -> (gone): released after the cause was fixed. The row is
    /// decided again from what it is now (a change row wakes capture).
    /// Returns the ids released. Guarded by `RunbookTests` (quarantine retry).
    static func release(
        _ db: Database, ids: [Int64]?, taskType: String?, bridgeID: String, legacyTable: String
    ) throws -> [Int64] {
        var sql = "SELECT legacy_id FROM _taskbridge_quarantine"
        var args = StatementArguments()
        if let ids {
            sql += " WHERE legacy_id IN (\(ids.map { _ in "?" }.joined(separator: ",")))"
            args = StatementArguments(ids)
        } else if let taskType {
            sql += " WHERE task_type = ?"
            args = [taskType]
        }
        let released = try Int64.fetchAll(db, sql: sql, arguments: args)
        let now = LegacyTimestamp.format(Date())
        for id in released {
            try LegacyRows.clearQuarantineNote(
                db, table: legacyTable, id: id, bridgeID: bridgeID, now: now, guardSQL: fingerprintGuard)
            try db.exec(sql: "DELETE FROM _taskbridge_quarantine WHERE legacy_id = ?", arguments: [id])
            try db.exec(
                sql: "DELETE FROM _taskbridge_ledger WHERE legacy_id = ? AND state = 'quarantined'", arguments: [id])
            try ChangeLog.announce(db, rowID: id)
        }
        return released
    }

    /// sent/done -> intent: the task vanished from TaskManager (verify --repair);
    /// the same params are sent again.
    static func resend(_ db: Database, legacyID: Int64) throws {
        try db.exec(
            sql: """
                UPDATE _taskbridge_ledger SET state = 'intent', tm_task_id = NULL, tm_status = NULL, collapsed = 0,
                    next_attempt_at = 0,
                    updated_at = ? WHERE legacy_id = ? AND state IN ('sent','done')
                """,
            arguments: [LegacyTimestamp.format(Date()), legacyID])
    }

    /// sent/done -> done/sent regardless of the monotonic guard (verify --repair
    /// of a diverged status), still only into the entry's own row, and never
    /// moving a finished row back in flight.
    static func forceMirror(
        _ db: Database, legacyID: Int64, tmStatus: String, result: JSONValue?, error: String?,
        bridgeID: String, legacyTable: String
    ) throws -> Bool {
        guard let legacy = LegacyStatus.mirroring(taskManagerStatus: tmStatus) else { return false }
        let now = LegacyTimestamp.format(Date())
        let changed = try LegacyRows.forceStatus(
            db, table: legacyTable, id: legacyID, bridgeID: bridgeID, status: legacy, result: result, error: error,
            now: now, guardSQL: fingerprintGuard)
        if changed {
            try db.exec(
                sql:
                    """
                    UPDATE _taskbridge_ledger SET state = ?, tm_status = ?, updated_at = ? WHERE legacy_id = ? AND \
                    state IN ('sent','done')
                    """,
                arguments: [legacy.isTerminal ? "done" : "sent", tmStatus, now, legacyID])
        }
        return changed
    }

    /// The tables that hold a record per legacy id: an archived entry leaves all of them.
    static let entryTables = [
        "_taskbridge_ledger", "_taskbridge_quarantine", "_taskbridge_dryrun", "_taskbridge_parity",
    ]

    /// any live state -> archived: the entry no longer applies to any row; it is
    /// kept (with why) for verify and export. Its quarantine, dry-run and
    /// parity records go with it.
    static func archive(_ db: Database, legacyID: Int64, reason: ArchiveReason) throws {
        let cols = columnList
        try db.exec(
            sql: """
                INSERT INTO _taskbridge_ledger_archive (archived_at, archive_reason, \(cols))
                SELECT ?, ?, \(cols) FROM _taskbridge_ledger WHERE legacy_id = ?
                """,
            arguments: [LegacyTimestamp.format(Date()), reason.rawValue, legacyID])
        for t in entryTables {
            try db.exec(sql: "DELETE FROM \(t) WHERE legacy_id = ?", arguments: [legacyID])
        }
    }

    /// The table lost continuity: every live entry whose row is gone or is
    /// another row is archived at once, and a new generation begins (entries
    /// made from now on carry it). Entries whose rows are still theirs stay
    /// (a restore that kept some rows). Returns the entries archived.
    /// Guarded by `LedgerTests.recreatedQueueNeverGetsOldResults`.
    static func beginGeneration(_ db: Database, legacyTable: String) throws -> (generation: Int64, archived: Int) {
        let next = try generation(db) + 1
        let cols = columnList.split(separator: ",").map { "l." + $0.trimmingCharacters(in: .whitespaces) }.joined(
            separator: ", ")
        let stale = """
            FROM _taskbridge_ledger l LEFT JOIN \(legacyTable) q ON q.id = l.legacy_id
            WHERE q.id IS NULL OR (l.fingerprint IS NOT NULL AND l.fingerprint <> \(fingerprintSQL("q")))
            """
        let ids = try Int64.fetchAll(db, sql: "SELECT l.legacy_id \(stale)")
        try db.exec(
            sql:
                """
                INSERT INTO _taskbridge_ledger_archive (archived_at, archive_reason, \(columnList)) SELECT ?, ?, \
                \(cols) \(stale)
                """,
            arguments: [LegacyTimestamp.format(Date()), ArchiveReason.newGeneration.rawValue])
        for chunk in stride(from: 0, to: ids.count, by: 500).map({ Array(ids[$0..<min($0 + 500, ids.count)]) }) {
            let marks = chunk.map { _ in "?" }.joined(separator: ",")
            for t in entryTables {
                try db.exec(sql: "DELETE FROM \(t) WHERE legacy_id IN (\(marks))", arguments: StatementArguments(chunk))
            }
        }
        try db.exec(
            sql:
                """
                INSERT INTO _taskbridge_meta (key, value) VALUES ('generation', ?) ON CONFLICT(key) DO UPDATE SET \
                value = excluded.value
                """,
            arguments: [String(next)])
        try setOrigin(db, newOrigin())
        return (next, ids.count)
    }

    /// Whether `task_queue` is still the table the live entries were made
    /// for. It is not when ids the ledger holds were never allocated by it
    /// (AUTOINCREMENT restarted: `QueueDatabase(path)` recreated it, or an
    /// older copy was restored), or when none of the newest entries' rows is
    /// theirs any more.
    static func hasLostContinuity(_ db: Database, legacyTable: String, tableName: String) throws -> Bool {
        guard let maxID = try Int64.fetchOne(db, sql: "SELECT MAX(legacy_id) FROM _taskbridge_ledger") else {
            return false
        }
        var allocated = try Int64.fetchOne(db, sql: "SELECT MAX(id) FROM \(legacyTable)") ?? 0
        if try db.tableExists("sqlite_sequence"),
            let seq = try Int64.fetchOne(
                db, sql: "SELECT seq FROM sqlite_sequence WHERE name = ?", arguments: [tableName])
        {
            allocated = max(allocated, seq)
        }
        if maxID > allocated { return true }
        let sample = try Row.fetchAll(
            db,
            sql: """
                SELECT l.fingerprint AS expected, \(fingerprintSQL("q")) AS actual FROM _taskbridge_ledger l
                LEFT JOIN \(legacyTable) q ON q.id = l.legacy_id
                WHERE l.fingerprint IS NOT NULL ORDER BY l.legacy_id DESC LIMIT 16
                """)
        guard !sample.isEmpty else { return false }
        return sample.allSatisfy { ($0["actual"] as String?) != ($0["expected"] as String) }
    }
}
