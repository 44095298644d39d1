import CutoverStages
import GRDB
import TaskManagerModel

/// Every database object taskbridge adds to the legacy file, all named
/// `_taskbridge_*`. Legacy DDL is never run; these are created and removed in
/// one transaction each, and their stored SQL is hashed so that a dropped or
/// altered object is noticed (PRODUCT.md invariant 7).
///
/// Capture design (PRODUCT.md section 4):
/// - `_taskbridge_ai` claims a new row of a `forward`/`retired` type inside
///   the producer's own INSERT transaction, reading the mode table, so no
///   legacy worker ever sees it `queued`; it logs inserts of non-`off` types.
/// - `_taskbridge_au` logs status changes of bridged rows and of rows of
///   non-`off` types, except the bridge's own writes: those run with
///   `_taskbridge_echo.active = 1`, set and cleared inside the bridge's write
///   transaction, so no other connection ever observes it set.
/// - `_taskbridge_ad` logs deletions the ledger must know about.
/// Off-type inserts pay one primary-key lookup in `_taskbridge_mode` and
/// nothing else.
public struct BridgeObjects: Sendable {
    public static let version = 7
    public let table: String
    public let bridgeID: String

    public init(table: String, bridgeID: String) {
        self.table = table
        self.bridgeID = bridgeID
    }

    public static let tableNames = [
        "_taskbridge_meta", "_taskbridge_mode", "_taskbridge_audit", "_taskbridge_changes", "_taskbridge_ledger",
        "_taskbridge_quarantine", "_taskbridge_dryrun", "_taskbridge_echo", "_taskbridge_parity",
        "_taskbridge_ledger_archive", ReverseLedger.table, ShadowLedger.table,
    ]
    /// Tables whose rows are work in passing, not records: change rows are
    /// deleted once captured, the echo flag is one row set inside a write.
    public static let transientTables: Set<String> = ["_taskbridge_changes", "_taskbridge_echo"]
    /// Every table that holds records (the evidence of the migration):
    /// what `export` archives, derived here so that a new table is archived
    /// unless it is declared transient. Guarded by `ExportTests`.
    public static var recordTables: [String] { tableNames.filter { !transientTables.contains($0) } }
    public static let triggerNames = ["_taskbridge_ai", "_taskbridge_au", "_taskbridge_aq", "_taskbridge_ad"]
    public static let indexNames = Ledger.indexNames + ReverseLedger.indexNames + ShadowLedger.indexNames

    static func quote(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "''") + "'" }
    var t: String { "\"\(table)\"" }
    var b: String { Self.quote(bridgeID) }
    /// `2026-11-29T14:53:36.123000+00:00`: six fractional digits, as
    /// Python's isoformat writes (SQLite's %f has three).
    static let now = "(strftime('%Y-%m-%dT%H:%M:%f','now') || '000+00:00')"

    public var tableDDL: [String] {
        [
            "CREATE TABLE IF NOT EXISTS _taskbridge_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
            """
            \(Self.modeDDL)
            """,
            """
            CREATE TABLE IF NOT EXISTS _taskbridge_audit (id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL,
                task_type TEXT NOT NULL, from_mode TEXT, to_mode TEXT NOT NULL, reason TEXT, host TEXT, actor TEXT,
                action TEXT NOT NULL DEFAULT 'cutover')
            """,
            """
            CREATE TABLE IF NOT EXISTS _taskbridge_changes (seq INTEGER PRIMARY KEY AUTOINCREMENT, row_id INTEGER NOT \
            NULL, op TEXT NOT NULL)
            """,
            Ledger.tableDDL,
            Ledger.archiveDDL,
            Ledger.quarantineDDL,
            ReverseLedger.ddl,
            ShadowLedger.ddl,
            """
            CREATE TABLE IF NOT EXISTS _taskbridge_dryrun (legacy_id INTEGER PRIMARY KEY, task_type TEXT NOT NULL,
                verdict TEXT NOT NULL CHECK (verdict IN ('would-forward','would-reject')), reason TEXT, at TEXT NOT
                    NULL)
            """,
            """
            CREATE TABLE IF NOT EXISTS _taskbridge_echo (id INTEGER PRIMARY KEY CHECK (id = 1), active INTEGER NOT \
            NULL)
            """,
            """
            CREATE TABLE IF NOT EXISTS _taskbridge_parity (legacy_id INTEGER PRIMARY KEY, task_type TEXT NOT NULL,
                class TEXT NOT NULL, detail TEXT, at TEXT NOT NULL)
            """,
            "INSERT OR IGNORE INTO _taskbridge_echo (id, active) VALUES (1, 0)",
        ]
    }

    public var triggerDDL: [String] {
        let claimNew = LegacyRows.claimAtTriggerSQL(
            table: t, bridge: b, now: Self.now, extraCondition: Canary.bridgeTakesSQL("NEW"))
        let claimRequeued = LegacyRows.claimAtTriggerSQL(table: t, bridge: b, now: Self.now, extraCondition: nil)
        let logged = BridgeMode.sqlList(\.logsChanges)
        return [
            """
            CREATE TRIGGER _taskbridge_ai AFTER INSERT ON \(t)
            WHEN EXISTS (SELECT 1 FROM _taskbridge_mode WHERE task_type = NEW.task_type AND mode IN \(logged))
              AND (SELECT active FROM _taskbridge_echo WHERE id = 1) = 0
            BEGIN
                \(claimNew);
                \(ChangeLog.appendSQL("NEW", op: "I"));
            END
            """,
            """
            CREATE TRIGGER _taskbridge_au AFTER UPDATE OF status ON \(t)
            WHEN OLD.status IS NOT NEW.status
              AND (SELECT active FROM _taskbridge_echo WHERE id = 1) = 0
              AND NOT (OLD.status = 'queued' AND NEW.status = 'claimed' AND NEW.claimed_by = \(b))
              AND (OLD.claimed_by = \(b) OR NEW.claimed_by = \(b)
                   OR EXISTS (SELECT 1 FROM _taskbridge_mode WHERE task_type = NEW.task_type AND mode IN \(logged)))
            BEGIN
                \(ChangeLog.appendSQL("NEW", op: "U"));
            END
            """,
            // A bridged row put back to `queued` (by an operator or a tool) is
            // claimed again at once, inside that same UPDATE, as the insert
            // trigger claims new rows: no legacy worker ever sees it queued
            // (issue 8, item 4). Capture archives its old entry and forwards it anew.
            """
            CREATE TRIGGER _taskbridge_aq AFTER UPDATE OF status ON \(t)
            WHEN NEW.status = 'queued' AND OLD.status IS NOT 'queued' AND OLD.claimed_by = \(b)
              AND (SELECT active FROM _taskbridge_echo WHERE id = 1) = 0
              AND \(Canary.bridgeTakesSQL("NEW"))
            BEGIN
                \(claimRequeued);
                \(ChangeLog.appendSQL("NEW", op: "R"));
            END
            """,
            """
            CREATE TRIGGER _taskbridge_ad AFTER DELETE ON \(t)
            WHEN OLD.claimed_by = \(b) OR EXISTS (SELECT 1 FROM _taskbridge_mode WHERE task_type = OLD.task_type AND
                mode IN \(logged))
            BEGIN
                \(ChangeLog.appendSQL("OLD", op: "D"));
            END
            """,
        ]
    }

    /// Identifies what this code would install: a change of table, bridge id
    /// or DDL means the installed objects are out of date.
    public var definitionHash: String {
        SHA256Digest.hex(
            Array(
                (["v\(Self.version)", table, bridgeID] + tableDDL + Self.indexDDL + triggerDDL)
                    .joined(separator: "\u{1}").utf8))
    }

    public static func installedSQL(_ db: Database) throws -> [String: String] {
        var out: [String: String] = [:]
        for row in try Row.fetchAll(
            db, sql: "SELECT name, sql FROM sqlite_master WHERE name LIKE '\\_taskbridge\\_%' ESCAPE '\\'")
        {
            out[row["name"]] = row["sql"] ?? ""
        }
        return out
    }

    static func objectsHash(_ installed: [String: String]) -> String {
        SHA256Digest.hex(
            Array(installed.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "\n").utf8))
    }

    public var allNames: [String] { Self.tableNames + Self.triggerNames + Self.indexNames }

    /// Columns added after a table's first release: the ledger's, and the
    /// audit trail's `action` (version 4: quarantine retries are audited too)
    /// and `percent` (version 5: the canary share of a cutover).
    static let addedColumns =
        Ledger.addedColumns + [
            ("_taskbridge_audit", "action", "TEXT NOT NULL DEFAULT 'cutover'"),
            ("_taskbridge_audit", "percent", "INTEGER"),
        ]

    static let indexDDL = Ledger.indexDDL + ReverseLedger.indexDDL + ShadowLedger.indexDDL

    /// Its CHECK lists every `BridgeMode`; a CHECK cannot be altered in place,
    /// so a table whose CHECK lacks a mode (version 5 added `reverse` and the
    /// canary columns, version 7 `shadow`) is rebuilt.
    static let modeDDL = """
        CREATE TABLE IF NOT EXISTS _taskbridge_mode (task_type TEXT PRIMARY KEY, mode TEXT NOT NULL
            \(BridgeMode.checkSQL), changed_at TEXT NOT NULL,
            percent INTEGER NOT NULL DEFAULT 100 CHECK (percent BETWEEN 1 AND 100),
            share_by TEXT NOT NULL DEFAULT 'id' CHECK (share_by IN ('id','params'))) WITHOUT ROWID
        """

    /// Tables whose constraints changed after their first release, with a
    /// text every current definition holds: an installed table without it is
    /// rebuilt (new table, rows copied by common column, old dropped, new
    /// renamed), inside the install transaction.
    static var rebuilt: [(table: String, ddl: String, marker: String)] {
        [("_taskbridge_mode", modeDDL, BridgeMode.checkSQL)]
    }

    static func rebuildOutdated(_ db: Database) throws {
        for (table, ddl, marker) in rebuilt {
            guard
                let sql = try String.fetchOne(
                    db, sql: "SELECT sql FROM sqlite_master WHERE name = ?", arguments: [table]),
                !sql.contains(marker)
            else { continue }
            let old = try String.fetchAll(db, sql: "SELECT name FROM pragma_table_info(?)", arguments: [table])
            let fresh = "_taskbridge_rebuild"
            try db.execute(sql: "DROP TABLE IF EXISTS \(fresh)")
            try db.execute(
                sql: ddl.replacingOccurrences(
                    of: "CREATE TABLE IF NOT EXISTS \(table) ", with: "CREATE TABLE \(fresh) "))
            let new = try String.fetchAll(db, sql: "SELECT name FROM pragma_table_info(?)", arguments: [fresh])
            let common = old.filter(new.contains).joined(separator: ", ")
            try db.execute(sql: "INSERT INTO \(fresh) (\(common)) SELECT \(common) FROM \(table)")
            try db.execute(sql: "DROP TABLE \(table)")
            try db.execute(sql: "ALTER TABLE \(fresh) RENAME TO \(table)")
        }
    }

    /// Creates what is missing, adds columns of later versions, and
    /// (re)creates the triggers; keeps data. Must run inside a transaction.
    public func install(_ db: Database, installedAt: String) throws {
        // Triggers first: they name the tables a rebuild drops and renames,
        // and SQLite refuses a rename while a trigger names a missing table.
        for name in Self.triggerNames { try db.execute(sql: "DROP TRIGGER IF EXISTS \(name)") }
        for sql in tableDDL { try db.execute(sql: sql) }
        for added in Self.addedColumns {
            let present = try String.fetchAll(
                db, sql: "SELECT name FROM pragma_table_info(?)", arguments: [added.table])
            if !present.contains(added.column) {
                try db.execute(sql: "ALTER TABLE \(added.table) ADD COLUMN \(added.column) \(added.definition)")
            }
        }
        try Self.rebuildOutdated(db)
        for sql in Self.indexDDL { try db.execute(sql: sql) }
        try Ledger.backfillFingerprints(db, legacyTable: t)
        for sql in triggerDDL { try db.execute(sql: sql) }
        let installed = try Self.installedSQL(db).filter { $0.key != "_taskbridge_meta" }
        let meta: [(String, String)] = [
            ("version", String(Self.version)), ("table", table), ("bridge_id", bridgeID),
            ("definition_hash", definitionHash), ("objects_hash", Self.objectsHash(installed)),
            ("installed_at", installedAt),
        ]
        if try Ledger.origin(db) == nil { try Ledger.setOrigin(db, Ledger.newOrigin()) }
        for (k, v) in meta {
            try db.execute(
                sql:
                    """
                    INSERT INTO _taskbridge_meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = \
                    excluded.value
                    """,
                arguments: [k, v])
        }
    }

    /// Removes every `_taskbridge_*` object. Must run inside a transaction.
    public static func uninstall(_ db: Database) throws {
        for name in triggerNames { try db.execute(sql: "DROP TRIGGER IF EXISTS \(name)") }
        for name in indexNames { try db.execute(sql: "DROP INDEX IF EXISTS \(name)") }
        for name in tableNames { try db.execute(sql: "DROP TABLE IF EXISTS \(name)") }
        // Leftovers from another version: anything with the prefix.
        for row in try Row.fetchAll(
            db, sql: "SELECT type, name FROM sqlite_master WHERE name LIKE '\\_taskbridge\\_%' ESCAPE '\\'")
        {
            let type: String = row["type"]
            guard ["table", "trigger", "index", "view"].contains(type) else { continue }
            try db.execute(sql: "DROP \(type.uppercased()) IF EXISTS \"\(row["name"] as String)\"")
        }
        // AUTOINCREMENT left rows for our tables in sqlite_sequence.
        if try db.tableExists("sqlite_sequence") {
            try db.execute(sql: "DELETE FROM sqlite_sequence WHERE name LIKE '\\_taskbridge\\_%' ESCAPE '\\'")
        }
    }

    public enum Health: Sendable, Equatable {
        case notInstalled
        case intact
        /// Installed by other code (version, table or bridge id differ).
        case outdated
        case damaged(missing: [String], altered: Bool)
    }

    public func check(_ db: Database) throws -> Health {
        let installed = try Self.installedSQL(db)
        if installed.isEmpty { return .notInstalled }
        let missing = allNames.filter { installed[$0] == nil }
        guard installed["_taskbridge_meta"] != nil else { return .damaged(missing: missing, altered: true) }
        let meta = Dictionary(
            try Row.fetchAll(db, sql: "SELECT key, value FROM _taskbridge_meta").map {
                ($0["key"] as String, $0["value"] as String)
            },
            uniquingKeysWith: { a, _ in a })
        // Another version's objects first: an upgrade adds objects, which is not damage.
        if meta["definition_hash"] != definitionHash { return .outdated }
        if !missing.isEmpty { return .damaged(missing: missing, altered: false) }
        let altered = meta["objects_hash"] != Self.objectsHash(installed.filter { $0.key != "_taskbridge_meta" })
        return altered ? .damaged(missing: [], altered: true) : .intact
    }
}
