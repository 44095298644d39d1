import Foundation
import GRDB
import SQLiteText
import TaskManagerModel

public enum LegacyQueueError: Error, CustomStringConvertible, Sendable {
    case missingDatabase(String)
    case schema(LegacySchema.DetectionError)
    case objects(String)
    /// Another process kept the write lock through the busy timeout.
    case locked(path: String, seconds: Double)

    public var description: String {
        switch self {
        case .missingDatabase(let p):
            return "legacy database \(p) does not exist (set [legacy] create_if_missing = true to create an empty worker queue)"
        case .schema(let e): return e.description
        case .objects(let m): return m
        case .locked(let p, let seconds):
            return "the legacy file \(p) is locked by another process (no write lock within \(Int(seconds.rounded())) s); "
                + "a legacy worker stuck in a transaction holds it until it exits"
        }
    }
}

/// The legacy SQLite file, accessed the way a legacy worker would: one
/// connection, `busy_timeout` >= 5000, `BEGIN IMMEDIATE` for every write,
/// short transactions, and no read transaction held between calls.
///
/// Every bridge write transaction that touches the legacy table first sets
/// `_taskbridge_echo.active` and clears it before commit, so its own writes
/// never come back as change rows.
public final class LegacyQueueStore: Sendable {
    public let path: String
    public let schema: LegacySchema
    public let objects: BridgeObjects
    /// WAL pool: short reads run beside the writer instead of queueing
    /// behind it (the mirror's scans never delay capture).
    let pool: DatabasePool
    /// A second connection only for `PRAGMA data_version`: it must not share
    /// the writer's connection, whose own commits do not bump the counter.
    let watcher: DatabaseQueue
    /// Waits for another process's write lock (see `LockWatch`).
    public let lockWatch = LockWatch()
    var table: String { "\"\(schema.table)\"" }
    var bridgeID: String { objects.bridgeID }

    public struct OpenResult: Sendable {
        public var store: LegacyQueueStore
        public var created: Bool
    }

    public static func open(path: String, table: String, bridgeID: String, createIfMissing: Bool, busyTimeoutMilliseconds: Int = 5000)
        throws -> OpenResult
    {
        var created = false
        if !FileManager.default.fileExists(atPath: path) {
            guard createIfMissing else { throw LegacyQueueError.missingDatabase(path) }
            try FileManager.default.createDirectory(
                atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path, withIntermediateDirectories: true)
            created = true
        }
        var config = Configuration()
        config.busyMode = .timeout(Double(max(busyTimeoutMilliseconds, 5000)) / 1000)
        config.label = "legacy"
        // Legacy workers put the file in WAL on every connect; a hand-made
        // A-min file may still use a rollback journal, where readers block
        // writers. The pool switches it to WAL, as a legacy worker would.
        let pool = try DatabasePool(path: path, configuration: config)
        if created {
            try pool.write { db in
                try db.execute(sql: LegacySchema.variantADDL(table: table))
            }
        }
        let schema = try pool.read { db -> LegacySchema in
            let cols = try Row.fetchAll(db, sql: "SELECT name, type, \"notnull\", pk FROM pragma_table_info(?)", arguments: [table]).map {
                LegacySchema.Column(name: $0["name"], type: $0["type"] ?? "", notNull: ($0["notnull"] as Int? ?? 0) != 0, primaryKey: ($0["pk"] as Int? ?? 0) != 0)
            }
            let sql = try String.fetchOne(db, sql: "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", arguments: [table])
            do {
                return try LegacySchema.detect(table: table, columns: cols, createSQL: sql)
            } catch let e as LegacySchema.DetectionError {
                throw LegacyQueueError.schema(e)
            }
        }
        var wconfig = Configuration()
        wconfig.readonly = true
        wconfig.label = "legacy-watch"
        let watcher = try DatabaseQueue(path: path, configuration: wconfig)
        let store = LegacyQueueStore(path: path, schema: schema, objects: BridgeObjects(table: table, bridgeID: bridgeID), pool: pool, watcher: watcher)
        return OpenResult(store: store, created: created)
    }

    init(path: String, schema: LegacySchema, objects: BridgeObjects, pool: DatabasePool, watcher: DatabaseQueue) {
        self.path = path
        self.schema = schema
        self.objects = objects
        self.pool = pool
        self.watcher = watcher
    }

    public func close() throws {
        try pool.close()
        try watcher.close()
    }

    /// A commit by any connection changes this value; polling it is the
    /// bridge's wake-up (cheap: no transaction, no page read).
    public func dataVersion() throws -> Int64 {
        try watcher.inDatabase { db in try Int64.fetchOne(db.cachedStatement(sql: "PRAGMA data_version")) ?? 0 }
    }

    /// `BEGIN IMMEDIATE` write, with echo suppression around it.
    public func write<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await immediateTransaction { db in
            try db.exec(sql: "UPDATE _taskbridge_echo SET active = 1 WHERE id = 1")
            let result = try body(db)
            try db.exec(sql: "UPDATE _taskbridge_echo SET active = 0 WHERE id = 1")
            return result
        }
    }

    /// Every write transaction of the store: `BEGIN IMMEDIATE` with the busy
    /// timeout, and, past it, the lock policy of `lockWatch` (a rolled-back
    /// attempt is safe to repeat: nothing of it was committed).
    func immediateTransaction<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        while true {
            let started = Date().timeIntervalSince1970
            do {
                let value = try await pool.writeWithoutTransaction { db in
                    var result: T?
                    try db.inTransaction(.immediate) {
                        result = try body(db)
                        return .commit
                    }
                    return result!
                }
                lockWatch.ended()
                return value
            } catch where LockWatch.isBusy(error) {
                if !lockWatch.busy(startedAt: started) {
                    throw LegacyQueueError.locked(path: path, seconds: Date().timeIntervalSince1970 - started)
                }
                try Task.checkCancellation()
            }
        }
    }

    public func read<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await pool.read(body)
    }

    // MARK: - Objects

    public func install() async throws {
        let objects = self.objects
        try await immediateTransaction { db in try objects.install(db, installedAt: LegacyTimestamp.format(Date())) }
    }

    public func uninstall() async throws {
        try await immediateTransaction { db in try BridgeObjects.uninstall(db) }
    }

    public func objectsHealth() async throws -> BridgeObjects.Health {
        let objects = self.objects
        return try await pool.read { db in try objects.check(db) }
    }

    // MARK: - Modes

    public func modes() async throws -> [String: String] {
        try await pool.read { db in
            guard try db.tableExists("_taskbridge_mode") else { return [:] }
            return Dictionary(
                try Row.fetchAll(db, sql: "SELECT task_type, mode FROM _taskbridge_mode").map { ($0["task_type"] as String, $0["mode"] as String) },
                uniquingKeysWith: { a, _ in a })
        }
    }

    /// Gives a type its starting mode if the database has none yet.
    public func seedMode(taskType: String, mode: String, host: String) async throws -> Bool {
        try await write { db in
            guard try String.fetchOne(db, sql: "SELECT mode FROM _taskbridge_mode WHERE task_type = ?", arguments: [taskType]) == nil
            else { return false }
            let now = LegacyTimestamp.format(Date())
            try db.exec(sql: "INSERT INTO _taskbridge_mode (task_type, mode, changed_at) VALUES (?, ?, ?)", arguments: [taskType, mode, now])
            try db.exec(
                sql: "INSERT INTO _taskbridge_audit (at, task_type, from_mode, to_mode, reason, host, actor) VALUES (?, ?, NULL, ?, ?, ?, 'taskbridge')",
                arguments: [now, taskType, mode, "initial mode from bridge.conf", host])
            return true
        }
    }

    /// Changes a type's mode and records it in the audit trail, atomically.
    @discardableResult
    public func setMode(taskType: String, mode: String, reason: String?, host: String, actor: String) async throws -> String? {
        try await write { db in
            let old = try String.fetchOne(db, sql: "SELECT mode FROM _taskbridge_mode WHERE task_type = ?", arguments: [taskType])
            let now = LegacyTimestamp.format(Date())
            try db.exec(
                sql: "INSERT INTO _taskbridge_mode (task_type, mode, changed_at) VALUES (?, ?, ?) ON CONFLICT(task_type) DO UPDATE SET mode = excluded.mode, changed_at = excluded.changed_at",
                arguments: [taskType, mode, now])
            try db.exec(
                sql: "INSERT INTO _taskbridge_audit (at, task_type, from_mode, to_mode, reason, host, actor) VALUES (?, ?, ?, ?, ?, ?, ?)",
                arguments: [now, taskType, old, mode, reason, host, actor])
            return old
        }
    }

    public func audit(limit: Int = 100) async throws -> [AuditEntry] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM _taskbridge_audit ORDER BY id DESC LIMIT ?", arguments: [limit]).map {
                AuditEntry(at: $0["at"], taskType: $0["task_type"], from: $0["from_mode"], to: $0["to_mode"], reason: $0["reason"], host: $0["host"])
            }
        }
    }

    // MARK: - Capture

    /// Parameter bytes read per capture transaction, at most (one row may
    /// exceed it alone).
    static let maxBatchBytes = 4 << 20

    /// A row put in quarantine by a store transition; the engine logs and
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

    public struct CaptureResult: Sendable {
        public var processed = 0
        public var intents = 0
        public var quarantined = 0
        public var dryRun = 0
        public var requeued = 0
        public var remaining = false
        public var intentsByType: [String: Int] = [:]
        public var verdicts: [DryRunKey: Int] = [:]
        public var quarantines: [QuarantineEvent] = []
    }

    /// Consumes up to `limit` change rows in one write transaction: the
    /// decisions for captured rows and the deletion of the change rows commit
    /// together, so a crash replays the batch instead of losing it.
    public func processChanges(limit: Int, decide: @escaping @Sendable (LegacyRow) -> CaptureDecision) async throws -> CaptureResult {
        let select = LegacyRow.selectSQL(schema)
        // A read first: most wake-ups are the bridge's own commits (they bump
        // data_version too), and an empty write transaction would commit, bump
        // it again, and keep an idle bridge busy.
        let any = try await pool.read { db in
            try Bool.fetchOne(db.cachedStatement(sql: "SELECT EXISTS (SELECT 1 FROM _taskbridge_changes)")) ?? false
        }
        guard any else { return CaptureResult() }
        return try await write { db in
            var result = CaptureResult()
            // Bounded by rows and by parameter bytes, so that one write
            // transaction stays short even when producers insert huge rows.
            let changes = try Row.fetchAll(
                db.cachedStatement(sql: """
                    SELECT c.seq, c.row_id, c.op, COALESCE(length(CAST(q.parameters AS BLOB)), 0) AS size
                    FROM _taskbridge_changes c LEFT JOIN \(self.table) q ON q.id = c.row_id ORDER BY c.seq LIMIT ?
                    """), arguments: [limit + 1])
            var bytes = 0
            var take = 0
            for c in changes.prefix(limit) {
                bytes += c["size"] as Int
                take += 1
                if bytes > Self.maxBatchBytes { break }
            }
            result.remaining = changes.count > take
            let batch = changes.prefix(take)
            guard let maxSeq = batch.last?["seq"] as Int64? else { return result }
            let ids = Array(Set(batch.map { $0["row_id"] as Int64 }))
            var rows: [Int64: LegacyRow] = [:]
            for chunk in stride(from: 0, to: ids.count, by: 500).map({ Array(ids[$0..<min($0 + 500, ids.count)]) }) {
                let marks = chunk.map { _ in "?" }.joined(separator: ",")
                for r in try Row.fetchAll(db, sql: "\(select) WHERE id IN (\(marks))", arguments: StatementArguments(chunk)) {
                    let row = LegacyRow(row: r)
                    rows[row.id] = row
                }
            }
            let ledgered = try Set(Int64.fetchAll(db, sql: "SELECT legacy_id FROM _taskbridge_ledger WHERE legacy_id IN (\(ids.map { _ in "?" }.joined(separator: ",")))", arguments: StatementArguments(ids)))
            for change in batch {
                let id: Int64 = change["row_id"]
                let op: String = change["op"]
                result.processed += 1
                switch op {
                case "I", "U":
                    guard let row = rows[id] else { continue }
                    if ledgered.contains(id), LegacyStatus(text: row.status) == .queued {
                        // Put back in the queue by hand: it is a new row again.
                        // Its old ledger entry goes, so the backlog claim can
                        // record a fresh intent (collapse mode finds the old
                        // task again through the API's dedupe).
                        try db.exec(sql: "DELETE FROM _taskbridge_ledger WHERE legacy_id = ?", arguments: [id])
                        try db.exec(sql: "DELETE FROM _taskbridge_quarantine WHERE legacy_id = ?", arguments: [id])
                        result.requeued += 1
                        continue
                    }
                    if ledgered.contains(id) {
                        // Someone changed a bridged row behind the bridge: have
                        // the mirror look again (it restores terminal states).
                        try db.exec(sql: "UPDATE _taskbridge_ledger SET next_attempt_at = 0, state = CASE WHEN state = 'done' THEN 'sent' ELSE state END WHERE legacy_id = ? AND state IN ('sent','done')", arguments: [id])
                        continue
                    }
                    if op == "U", LegacyStatus(text: row.status) == .queued { result.requeued += 1 }
                    try self.apply(decide(row), row: row, db: db, result: &result)
                case "D":
                    continue  // the ledger keeps its record; verify reports the row as missing
                default:
                    continue
                }
            }
            try db.exec(sql: "DELETE FROM _taskbridge_changes WHERE seq <= ?", arguments: [maxSeq])
            return result
        }
    }

    func apply(_ decision: CaptureDecision, row: LegacyRow, db: Database, result: inout CaptureResult) throws {
        let now = LegacyTimestamp.format(Date())
        switch decision {
        case .ignore:
            break
        case .intent(let tmType, let paramsJSON, let key, let priority, let dueAt):
            guard row.claimedBy == bridgeID, LegacyStatus(text: row.status) == .claimed else { return }
            try db.exec(
                sql: """
                    INSERT OR IGNORE INTO _taskbridge_ledger (legacy_id, task_type, tm_type, state, params_json, dedupe_key, priority,
                        due_at, claimed_at, updated_at) VALUES (?, ?, ?, 'intent', ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [row.id, row.taskType, tmType, paramsJSON, key, priority, dueAt, row.claimedAt ?? now, now])
            if db.changesCount > 0 {
                result.intents += 1
                result.intentsByType[row.taskType, default: 0] += 1
            }
        case .quarantine(let taskType, let code, let detail):
            guard row.claimedBy == bridgeID else { return }
            try db.exec(
                sql: "INSERT OR IGNORE INTO _taskbridge_ledger (legacy_id, task_type, tm_type, state, claimed_at, updated_at, last_error) VALUES (?, ?, '', 'quarantined', ?, ?, ?)",
                arguments: [row.id, taskType, row.claimedAt ?? now, now, detail])
            try quarantine(db, legacyID: row.id, taskType: taskType, code: code, detail: detail)
            result.quarantined += 1
            result.quarantines.append(QuarantineEvent(legacyID: row.id, taskType: taskType, code: code, detail: detail))
        case .dryRun(let verdict, let reason):
            try recordVerdict(db, legacyID: row.id, taskType: row.taskType, verdict: verdict, reason: reason, at: now)
            result.dryRun += 1
            result.verdicts[DryRunKey(taskType: row.taskType, verdict: verdict), default: 0] += 1
        }
    }

    func recordVerdict(_ db: Database, legacyID: Int64, taskType: String, verdict: String, reason: String?, at: String) throws {
        try db.exec(sql: "INSERT INTO _taskbridge_dryrun (legacy_id, task_type, verdict, reason, at) VALUES (?, ?, ?, ?, ?) ON CONFLICT(legacy_id) DO UPDATE SET verdict = excluded.verdict, reason = excluded.reason, at = excluded.at", arguments: [legacyID, taskType, verdict, reason, at])
    }

    /// Records a quarantine and makes it visible to legacy tooling in the
    /// row's `error_message` (the row stays claimed by the bridge, so no
    /// legacy worker executes it and nothing is lost).
    func quarantine(_ db: Database, legacyID: Int64, taskType: String, code: String, detail: String) throws {
        let now = LegacyTimestamp.format(Date())
        try db.exec(
            sql: """
                INSERT INTO _taskbridge_quarantine (legacy_id, task_type, reason, detail, attempts, first_at, last_at)
                VALUES (?, ?, ?, ?, 1, ?, ?)
                ON CONFLICT(legacy_id) DO UPDATE SET reason = excluded.reason, detail = excluded.detail,
                    attempts = attempts + 1, last_at = excluded.last_at
                """,
            arguments: [legacyID, taskType, code, detail, now, now])
        try db.exec(sql: "UPDATE _taskbridge_ledger SET state = 'quarantined', last_error = ?, updated_at = ? WHERE legacy_id = ?",
                       arguments: [detail, now, legacyID])
        try db.exec(
            sql: "UPDATE \(table) SET error_message = ?, updated_at = ? WHERE id = ? AND claimed_by = ? AND status IN ('claimed','running')",
            arguments: ["taskbridge quarantine (\(code)): \(detail)", now, legacyID, bridgeID])
    }

    /// Claims queued rows of forward types with the legacy claim protocol
    /// (`BEGIN IMMEDIATE`, `WHERE status = 'queued'`), racing legacy workers
    /// fairly, and records the decisions in the same transaction.
    public func claimBacklog(types: [String], limit: Int, decide: @escaping @Sendable (LegacyRow) -> CaptureDecision) async throws -> CaptureResult {
        guard !types.isEmpty else { return CaptureResult() }
        let select = LegacyRow.selectSQL(schema)
        let t = table, b = bridgeID
        return try await write { db in
            var result = CaptureResult()
            let now = LegacyTimestamp.format(Date())
            let marks = types.map { _ in "?" }.joined(separator: ",")
            var args = StatementArguments([b, now, now])
            args += StatementArguments(types)
            args += StatementArguments([limit])
            let ids = try Int64.fetchAll(
                db,
                sql: """
                    UPDATE \(t) SET status = 'claimed', claimed_by = ?, claimed_at = ?, updated_at = ?
                    WHERE id IN (SELECT id FROM \(t) WHERE status = 'queued' AND task_type IN (\(marks)) ORDER BY id LIMIT ?)
                      AND status = 'queued'
                    RETURNING id
                    """, arguments: args)
            result.remaining = ids.count == limit
            guard !ids.isEmpty else { return result }
            let idMarks = ids.map { _ in "?" }.joined(separator: ",")
            for r in try Row.fetchAll(db, sql: "\(select) WHERE id IN (\(idMarks))", arguments: StatementArguments(ids)) {
                let row = LegacyRow(row: r)
                result.processed += 1
                try self.apply(decide(row), row: row, db: db, result: &result)
            }
            return result
        }
    }

    /// Rows the bridge holds but has no ledger entry for (their change rows
    /// were lost, or the triggers ran while the bridge was away).
    public func adoptOrphans(limit: Int, decide: @escaping @Sendable (LegacyRow) -> CaptureDecision) async throws -> CaptureResult {
        let select = LegacyRow.selectSQL(schema)
        let b = bridgeID
        return try await write { db in
            var result = CaptureResult()
            let rows = try Row.fetchAll(
                db,
                // Rows with a change row pending are capture's to decide.
                sql: """
                    \(select) WHERE claimed_by = ? AND status IN ('claimed','running')
                      AND id NOT IN (SELECT legacy_id FROM _taskbridge_ledger)
                      AND id NOT IN (SELECT row_id FROM _taskbridge_changes)
                    ORDER BY id LIMIT ?
                    """,
                arguments: [b, limit])
            result.remaining = rows.count == limit
            for r in rows {
                let row = LegacyRow(row: r)
                result.processed += 1
                try self.apply(decide(row), row: row, db: db, result: &result)
            }
            return result
        }
    }

    /// Rows of dry-run types that arrived before their last dry-run verdict.
    public func dryRunBacklog(types: [String], limit: Int) async throws -> [LegacyRow] {
        guard !types.isEmpty else { return [] }
        let select = LegacyRow.selectSQL(schema)
        return try await pool.read { db in
            let marks = types.map { _ in "?" }.joined(separator: ",")
            var args = StatementArguments(types)
            args += StatementArguments([limit])
            return try Row.fetchAll(db, sql: "\(select) WHERE status = 'queued' AND task_type IN (\(marks)) AND id NOT IN (SELECT legacy_id FROM _taskbridge_dryrun) ORDER BY id LIMIT ?", arguments: args).map(LegacyRow.init)
        }
    }

    public func recordDryRun(_ verdicts: [(Int64, String, String, String?)]) async throws {
        try await write { db in
            let now = LegacyTimestamp.format(Date())
            for (id, type, verdict, reason) in verdicts {
                try self.recordVerdict(db, legacyID: id, taskType: type, verdict: verdict, reason: reason, at: now)
            }
        }
    }

    // MARK: - Forwarding

    /// Intents whose time has come, oldest first. A short read; the sends
    /// happen after it returns.
    public func dueIntents(now: Double, limit: Int) async throws -> [LedgerEntry] {
        try await pool.read { db in
            try Row.fetchAll(
                db.cachedStatement(
                    sql: "SELECT * FROM _taskbridge_ledger WHERE state = 'intent' AND next_attempt_at <= ? AND due_at <= ? ORDER BY next_attempt_at, legacy_id LIMIT ?"),
                arguments: [now, now, limit]
            ).map(LedgerEntry.init)
        }
    }

    public enum SendOutcome: Sendable {
        case sent(legacyID: Int64, taskID: Int64, status: String, collapsed: Bool)
        /// `errorStreak` and `streakStartedAt`: the run of identical server
        /// errors this row has met so far (0 and nil when the error was not one).
        case retry(legacyID: Int64, error: String, nextAttemptAt: Double, errorStreak: Int64 = 0, streakStartedAt: Double? = nil)
        case rejected(legacyID: Int64, taskType: String, code: String, detail: String)
        /// Cancelled at stop: nothing is recorded, the intent is sent again.
        case abandoned(legacyID: Int64)
    }

    /// Records a batch of send results in one transaction. A `sent` row shows
    /// its TaskManager task's status at once where that is already known
    /// (a collapse onto a finished task is mirrored by the caller).
    @discardableResult
    public func recordSends(_ outcomes: [SendOutcome]) async throws -> [QuarantineEvent] {
        guard !outcomes.isEmpty else { return [] }
        return try await write { db in
            var quarantines: [QuarantineEvent] = []
            let now = LegacyTimestamp.format(Date())
            for o in outcomes {
                switch o {
                case .sent(let id, let taskID, let status, let collapsed):
                    try db.exec(
                        sql: """
                            UPDATE _taskbridge_ledger SET state = 'sent', tm_task_id = ?, tm_status = ?, collapsed = ?, sent_at = ?,
                                updated_at = ?, attempts = attempts + 1, next_attempt_at = ?, last_error = NULL
                            WHERE legacy_id = ? AND state = 'intent'
                            """,
                        // A new task is pending; the mirror's claimed-list and
                        // queue-edge checks see it move before its first re-check.
                        arguments: [taskID, status, collapsed ? 1 : 0, now, now, Date().timeIntervalSince1970 + 1, id])
                case .retry(let id, let error, let next, let streak, let streakStart):
                    try db.exec(
                        sql: """
                            UPDATE _taskbridge_ledger SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?, updated_at = ?,
                                error_streak = ?, streak_started_at = ?
                            WHERE legacy_id = ? AND state = 'intent'
                            """,
                        arguments: [error, next, now, streak, streakStart, id])
                case .abandoned:
                    continue
                case .rejected(let id, let type, let code, let detail):
                    // Only an intent can be rejected: a late answer must not
                    // quarantine a row another send has already placed.
                    let state = try String.fetchOne(db.cachedStatement(sql: "SELECT state FROM _taskbridge_ledger WHERE legacy_id = ?"), arguments: [id])
                    guard state == "intent" else { continue }
                    try self.quarantine(db, legacyID: id, taskType: type, code: code, detail: detail)
                    quarantines.append(QuarantineEvent(legacyID: id, taskType: type, code: code, detail: detail))
                }
            }
            return quarantines
        }
    }

    /// When the next intent becomes sendable (epoch seconds), if any.
    public func nextIntentDue() async throws -> Double? {
        try await pool.read { db in
            try Double.fetchOne(db, sql: "SELECT MIN(MAX(next_attempt_at, due_at)) FROM _taskbridge_ledger WHERE state = 'intent'")
        }
    }

    /// Makes every intent waiting out a backoff due now.
    public func resetBackoff() async throws {
        try await write { db in
            try db.exec(sql: "UPDATE _taskbridge_ledger SET next_attempt_at = 0 WHERE state = 'intent' AND next_attempt_at > 0")
        }
    }

    // MARK: - Mirroring

    /// TaskManager type names with forwarded tasks that may still change.
    public func inFlightTaskManagerTypes() async throws -> [String] {
        try await pool.read { db in
            try String.fetchAll(db.cachedStatement(sql: "SELECT DISTINCT tm_type FROM _taskbridge_ledger WHERE state = 'sent'"))
        }
    }

    /// The bridge id the installed objects were made for, if any.
    public func installedBridgeID() async throws -> String? {
        try await pool.read { db in
            guard try db.tableExists("_taskbridge_meta") else { return nil }
            return try String.fetchOne(db, sql: "SELECT value FROM _taskbridge_meta WHERE key = 'bridge_id'")
        }
    }

    /// Ledger rows not yet finished (their legacy row is held by the bridge).
    public func rowsHeldInFlight() async throws -> Int {
        try await pool.read { db in
            guard try db.tableExists("_taskbridge_ledger") else { return 0 }
            return try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM _taskbridge_ledger WHERE state IN ('intent','sent','quarantined')") ?? 0
        }
    }

    public struct MirrorCandidates: Sendable {
        /// Rows last seen `claimed`, or already known finished (a collapse).
        public var moving: [LedgerEntry] = []
        /// The oldest and newest pending tasks (where workers take from).
        public var edges: [LedgerEntry] = []
        /// Rows whose scheduled re-check has come.
        public var due: [LedgerEntry] = []
    }

    /// The mirror's candidates, each an index range read: the cost follows
    /// what can have changed, not how many tasks are in flight.
    public func mirrorCandidates(now: Double, edge: Int, budget: Int) async throws -> MirrorCandidates {
        try await pool.read { db in
            func fetch(_ sql: String, _ args: StatementArguments) throws -> [LedgerEntry] {
                try Row.fetchAll(db.cachedStatement(sql: sql), arguments: args).map(LedgerEntry.init)
            }
            var c = MirrorCandidates()
            c.moving = try fetch(
                "SELECT * FROM _taskbridge_ledger WHERE state = 'sent' AND tm_status IN ('claimed','completed','failed') LIMIT ?", [budget * 4])
            let pending = "SELECT * FROM _taskbridge_ledger WHERE state = 'sent' AND tm_status IN ('pending','pending (retry)') ORDER BY tm_task_id"
            c.edges = try fetch(pending + " ASC LIMIT ?", [edge]) + fetch(pending + " DESC LIMIT ?", [edge])
            c.due = try fetch("SELECT * FROM _taskbridge_ledger WHERE state = 'sent' AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?", [now, budget])
            return c
        }
    }

    public func inFlight(taskIDs: [Int64]) async throws -> [LedgerEntry] {
        guard !taskIDs.isEmpty else { return [] }
        return try await pool.read { db in
            var out: [LedgerEntry] = []
            for chunk in stride(from: 0, to: taskIDs.count, by: 500).map({ Array(taskIDs[$0..<min($0 + 500, taskIDs.count)]) }) {
                let marks = chunk.map { _ in "?" }.joined(separator: ",")
                out += try Row.fetchAll(db, sql: "SELECT * FROM _taskbridge_ledger WHERE state = 'sent' AND tm_task_id IN (\(marks))", arguments: StatementArguments(chunk)).map(LedgerEntry.init)
            }
            return out
        }
    }

    public struct MirrorUpdate: Sendable {
        public var legacyID: Int64
        public var tmStatus: String
        public var attempts: Int64?
        public var result: JSONValue?
        public var error: String?
        /// When the ledger should look again if the task is not terminal.
        public var nextCheckAt: Double
        public init(legacyID: Int64, tmStatus: String, attempts: Int64?, result: JSONValue?, error: String?, nextCheckAt: Double) {
            self.legacyID = legacyID
            self.tmStatus = tmStatus
            self.attempts = attempts
            self.result = result
            self.error = error
            self.nextCheckAt = nextCheckAt
        }
    }

    /// Writes TaskManager state into legacy rows, in legacy formats, in one
    /// transaction. The guard `status IN ('claimed','running')` on the row
    /// makes mirroring monotonic: a terminal row is never touched again.
    @discardableResult
    public func recordMirror(_ updates: [MirrorUpdate]) async throws -> Int {
        guard !updates.isEmpty else { return 0 }
        let schema = self.schema
        let t = table, b = bridgeID
        return try await write { db in
            let now = LegacyTimestamp.format(Date())
            var terminal = 0
            for u in updates {
                guard let legacy = LegacyStatus.mirroring(taskManagerStatus: u.tmStatus) else { continue }
                var sets = ["status = ?", "updated_at = ?"]
                var args: [DatabaseValueConvertible?] = [legacy.rawValue, now]
                if schema.hasRetryColumns, let a = u.attempts {
                    // TaskManager counts claims; legacy counts retries, capped by its CHECK.
                    sets.append("retry_count = MIN(?, max_retries)")
                    args.append(max(a - 1, 0))
                }
                if legacy.isTerminal {
                    // The error is free text from a worker: every byte of it (SQLiteText).
                    sets += ["completed_at = ?", "result_data = ?", "error_message = CAST(? AS TEXT)"]
                    args += [now, u.result.map(PHPJSON.encode), SQLiteText.bind(u.error)]
                }
                args += [u.legacyID, b]
                try db.exec(
                    sql: "UPDATE \(t) SET \(sets.joined(separator: ", ")) WHERE id = ? AND claimed_by = ? AND status IN ('claimed','running')",
                    arguments: StatementArguments(args) ?? StatementArguments())
                let statusNow = try String.fetchOne(db, sql: "SELECT status FROM \(t) WHERE id = ?", arguments: [u.legacyID])
                let rowTerminal = LegacyStatus(text: statusNow)?.isTerminal ?? true  // a deleted row has nothing left to mirror
                if legacy.isTerminal || rowTerminal {
                    terminal += 1
                    try db.exec(
                        sql: "UPDATE _taskbridge_ledger SET state = 'done', tm_status = ?, done_at = ?, updated_at = ? WHERE legacy_id = ? AND state = 'sent'",
                        arguments: [u.tmStatus, now, now, u.legacyID])
                } else {
                    try db.exec(
                        sql: "UPDATE _taskbridge_ledger SET tm_status = ?, next_attempt_at = ?, updated_at = ? WHERE legacy_id = ? AND state = 'sent'",
                        arguments: [u.tmStatus, u.nextCheckAt, now, u.legacyID])
                }
            }
            return terminal
        }
    }

    // MARK: - Quarantine

    public func quarantineList(taskType: String? = nil) async throws -> [QuarantineEntry] {
        try await pool.read { db in
            guard try db.tableExists("_taskbridge_quarantine") else { return [] }
            return try Row.fetchAll(
                db, sql: "SELECT * FROM _taskbridge_quarantine \(taskType == nil ? "" : "WHERE task_type = ?") ORDER BY legacy_id",
                arguments: taskType.map { [$0] } ?? []
            ).map {
                QuarantineEntry(legacyID: $0["legacy_id"], taskType: $0["task_type"], reason: $0["reason"], detail: $0["detail"],
                                attempts: $0["attempts"], firstAt: $0["first_at"], lastAt: $0["last_at"])
            }
        }
    }

    /// Releases quarantined rows so the bridge decides again from the row as
    /// it is now (after the cause was fixed). Returns the ids released.
    public func quarantineRetry(ids: [Int64]?, taskType: String?) async throws -> [Int64] {
        let t = table, b = bridgeID
        return try await write { db in
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
            for id in released {
                try db.exec(sql: "DELETE FROM _taskbridge_quarantine WHERE legacy_id = ?", arguments: [id])
                try db.exec(sql: "DELETE FROM _taskbridge_ledger WHERE legacy_id = ? AND state = 'quarantined'", arguments: [id])
                try db.exec(
                    sql: "UPDATE \(t) SET error_message = NULL, updated_at = ? WHERE id = ? AND claimed_by = ? AND error_message LIKE 'taskbridge quarantine%'",
                    arguments: [LegacyTimestamp.format(Date()), id, b])
                // A change row makes the running bridge decide again at once.
                try db.exec(sql: "INSERT INTO _taskbridge_changes (row_id, op) VALUES (?, 'I')", arguments: [id])
            }
            return released
        }
    }
}

extension Database {
    /// Runs one statement through the connection's prepared-statement cache:
    /// hot paths (capture, send, mirror, create, claim) repeat the same SQL
    /// thousands of times, and preparing it anew each time was measurable.
    func exec(sql: String, arguments: StatementArguments = StatementArguments()) throws {
        try cachedStatement(sql: sql).execute(arguments: arguments)
    }
}
