import Foundation
import GRDB
import TaskManagerModel

/// The store's side of forwarding and mirroring: short reads for the loops,
/// and write transactions that apply `Ledger` transitions in batches.
extension LegacyQueueStore {
    /// What became of one create, for the ledger.
    public enum SendRecord: Sendable, Equatable {
        case sent(legacyID: Int64, taskID: Int64, status: String, deduplicated: Bool)
        case retry(
            legacyID: Int64, error: String, nextAttemptAt: Double, errorStreak: Int64 = 0,
            streakStartedAt: Double? = nil)
        case refused(legacyID: Int64, taskType: String, code: String, detail: String)
    }

    public struct SendResults: Sendable {
        public var quarantines: [QuarantineEvent] = []
        /// Rows counted as collapsed by this batch (see `Ledger.recordSent`).
        public var collapsed = 0
        public var sent = 0
    }

    /// Records a batch of send results in one transaction.
    @discardableResult
    public func recordSends(_ records: [SendRecord]) async throws -> SendResults {
        guard !records.isEmpty else { return SendResults() }
        let t = table, b = bridgeID
        return try await writeLedger { db in
            var out = SendResults()
            let generation = try Ledger.generation(db)
            for r in records {
                switch r {
                case .sent(let id, let taskID, let status, let deduplicated):
                    // A new task is pending; the mirror's claimed-list and
                    // queue-edge checks see it move before its first re-check.
                    if let collapsed = try Ledger.recordSent(
                        db, legacyID: id, taskID: taskID, status: status, deduplicated: deduplicated,
                        nextCheckAt: Date().timeIntervalSince1970 + 1)
                    {
                        out.sent += 1
                        out.collapsed += collapsed
                    }
                case .retry(let id, let error, let next, let streak, let started):
                    try Ledger.recordRetry(
                        db, legacyID: id, error: error, nextAttemptAt: next, errorStreak: streak,
                        streakStartedAt: started)
                case .refused(let id, let type, let code, let detail):
                    if try Ledger.recordQuarantine(
                        db, row: nil, legacyID: id, taskType: type, code: code, detail: detail,
                        generation: generation, bridgeID: b, legacyTable: t)
                    {
                        out.quarantines.append(
                            QuarantineEvent(legacyID: id, taskType: type, code: code, detail: detail))
                    }
                }
            }
            return out
        }
    }

    /// Makes every intent waiting out a backoff due now.
    public func resetBackoff() async throws {
        try await writeLedger { db in try Ledger.endBackoff(db) }
    }

    public struct MirrorResults: Sendable {
        public var terminal = 0
        public var archived = 0
    }

    /// Writes what the mirror saw into legacy rows, in legacy formats, in one
    /// transaction (see `Ledger.recordMirror`).
    @discardableResult
    public func recordMirror(_ observations: [Ledger.Observation]) async throws -> MirrorResults {
        guard !observations.isEmpty else { return MirrorResults() }
        let schema = self.schema
        let t = table, b = bridgeID
        return try await write { db in
            var out = MirrorResults()
            for o in observations {
                switch try Ledger.recordMirror(db, o, schema: schema, bridgeID: b, legacyTable: t) {
                case .applied(let terminal): if terminal { out.terminal += 1 }
                case .archived: out.archived += 1
                case .skipped: break
                }
            }
            return out
        }
    }

    // MARK: - Continuity

    /// Checks that `task_queue` is still the table the ledger was made for
    /// and, when it is not, begins a new generation (archiving the entries
    /// that no longer apply). Nil when continuity holds.
    public func checkContinuity() async throws -> (generation: Int64, archived: Int)? {
        let t = table, name = schema.table
        guard try await asyncRead({ db in try Ledger.hasLostContinuity(db, legacyTable: t, tableName: name) }) else {
            return nil
        }
        return try await writeLedger { db in
            guard try Ledger.hasLostContinuity(db, legacyTable: t, tableName: name) else { return nil }
            return try Ledger.beginGeneration(db, legacyTable: t)
        }
    }

    /// Begins a new generation whatever the continuity check says: the file
    /// at the path was replaced (a restore), so ids the old file allocated
    /// after the copy was taken may come again. Entries whose rows are still
    /// theirs stay; the rest are archived; the origin is new.
    public func beginNewGeneration() async throws -> (generation: Int64, archived: Int) {
        let t = table
        return try await writeLedger { db in try Ledger.beginGeneration(db, legacyTable: t) }
    }

    public func knownOrigins() async throws -> Set<String> {
        try await asyncRead { db in try Ledger.knownOrigins(db) }
    }

    /// The current generation's origin (nil before install).
    public func origin() async throws -> String? {
        try await asyncRead { db in try Ledger.origin(db) }
    }

    public func archivedCount() async throws -> Int {
        try await asyncRead { db in
            try db.tableExists(Ledger.archiveTable)
                ? try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM \(Ledger.archiveTable)") ?? 0 : 0
        }
    }

    // MARK: - Quarantine

    /// Releases quarantined rows so the bridge decides again from the row as
    /// it is now (after the cause was fixed). Returns the ids released.
    /// The release is audited (action `quarantine-retry`, one entry per type)
    /// in the same transaction, whoever asked: the CLI, the dashboard, repair.
    public func quarantineRetry(
        ids: [Int64]?, taskType: String?, actor: String = "taskbridge", host: String = "", reason: String? = nil
    ) async throws -> [Int64] {
        let t = table, b = bridgeID
        return try await writeLedger { db in
            var types: [Int64: String] = [:]
            for r in try Row.fetchAll(db, sql: "SELECT legacy_id, task_type FROM _taskbridge_quarantine") {
                types[r[0]] = r[1]
            }
            let released = try Ledger.release(db, ids: ids, taskType: taskType, bridgeID: b, legacyTable: t)
            let byType = Dictionary(grouping: released, by: { types[$0] ?? "" })
            let now = LegacyTimestamp.format(Date())
            for (type, list) in byType.sorted(by: { $0.key < $1.key }) {
                let mode =
                    try String.fetchOne(
                        db, sql: "SELECT mode FROM _taskbridge_mode WHERE task_type = ?", arguments: [type]) ?? "off"
                let shown = list.prefix(20).map(String.init).joined(separator: " ") + (list.count > 20 ? " ..." : "")
                try db.exec(
                    sql: """
                        INSERT INTO _taskbridge_audit (at, task_type, from_mode, to_mode, reason, host, actor, action)
                        VALUES (?, ?, ?, ?, ?, ?, ?, 'quarantine-retry')
                        """,
                    arguments: [
                        now, type, mode, mode,
                        "released \(list.count) row(s): \(shown)" + (reason.map { "; \($0)" } ?? ""), host, actor,
                    ])
            }
            return released
        }
    }

    // MARK: - Repair (verify --repair)

    /// Writes a TaskManager status into a bridged row even where the normal
    /// monotonic guard would refuse (a diverged status), into its own row only.
    public func forceMirror(legacyID: Int64, tmStatus: String, result: JSONValue?, error: String?) async throws -> Bool
    {
        let t = table, b = bridgeID
        return try await write { db in
            try Ledger.forceMirror(
                db, legacyID: legacyID, tmStatus: tmStatus, result: result, error: error, bridgeID: b, legacyTable: t)
        }
    }

    /// Hands an in-flight row the bridge holds without a ledger entry back to
    /// the capture path (a change row makes the bridge decide again).
    public func adoptRow(legacyID: Int64) async throws -> Bool {
        let t = table, b = bridgeID
        return try await writeLedger { db in
            let status = try String.fetchOne(
                db, sql: "SELECT status FROM \(t) WHERE id = ? AND claimed_by = ?", arguments: [legacyID, b])
            guard [.claimed, .running].contains(LegacyStatus(text: status)) else { return false }
            try ChangeLog.announce(db, rowID: legacyID)
            return true
        }
    }

    /// Sends a forwarded row again (its task vanished from TaskManager).
    public func resetToIntent(legacyID: Int64) async throws {
        try await writeLedger { db in try Ledger.resend(db, legacyID: legacyID) }
    }

    // MARK: - Reads for the loops

    /// Intents whose time has come, oldest first. A short read; the sends
    /// happen after it returns.
    public func dueIntents(now: Double, limit: Int) async throws -> [LedgerEntry] {
        try await asyncRead { db in
            try Row.fetchAll(
                db.cachedStatement(
                    sql:
                        """
                        SELECT \(Ledger.entryColumns) FROM _taskbridge_ledger WHERE state = 'intent' AND
                            next_attempt_at <= ? AND due_at <= \
                        ? ORDER BY next_attempt_at, legacy_id LIMIT ?
                        """
                ),
                arguments: [now, now, limit]
            ).map(LedgerEntry.init)
        }
    }

    /// When the next intent becomes sendable (epoch seconds), if any.
    public func nextIntentDue() async throws -> Double? {
        try await asyncRead { db in
            try Double.fetchOne(
                db, sql: "SELECT MIN(MAX(next_attempt_at, due_at)) FROM _taskbridge_ledger WHERE state = 'intent'")
        }
    }

    /// TaskManager type names with forwarded tasks that may still change.
    public func inFlightTaskManagerTypes() async throws -> [String] {
        try await asyncRead { db in
            try String.fetchAll(
                db.cachedStatement(sql: "SELECT DISTINCT tm_type FROM _taskbridge_ledger WHERE state = 'sent'"))
        }
    }

    /// The bridge id the installed objects were made for, if any.
    public func installedBridgeID() async throws -> String? {
        try await asyncRead { db in
            guard try db.tableExists("_taskbridge_meta") else { return nil }
            return try String.fetchOne(db, sql: "SELECT value FROM _taskbridge_meta WHERE key = 'bridge_id'")
        }
    }

    /// Ledger rows not yet finished (their legacy row is held by the bridge).
    public func rowsHeldInFlight() async throws -> Int {
        try await asyncRead { db in
            guard try db.tableExists("_taskbridge_ledger") else { return 0 }
            return try Int.fetchOne(
                db, sql: "SELECT COUNT(*) FROM _taskbridge_ledger WHERE state IN ('intent','sent','quarantined')") ?? 0
        }
    }

    public struct MirrorCandidates: Sendable {
        /// Rows last seen `claimed`, or already known finished (a collapse).
        public var moving: [LedgerEntry] = []
        /// The oldest and newest pending tasks (where workers take from).
        public var edges: [LedgerEntry] = []
        /// Rows whose scheduled re-check has come.
        public var due: [LedgerEntry] = []
        public init() {}
    }

    /// The mirror's candidates, each an index range read: the cost follows
    /// what can have changed, not how many tasks are in flight.
    public func mirrorCandidates(now: Double, edge: Int, budget: Int) async throws -> MirrorCandidates {
        try await asyncRead { db in
            func fetch(_ sql: String, _ args: StatementArguments) throws -> [LedgerEntry] {
                try Row.fetchAll(db.cachedStatement(sql: sql), arguments: args).map(LedgerEntry.init)
            }
            var c = MirrorCandidates()
            c.moving = try fetch(
                """
                SELECT \(Ledger.entryColumns) FROM _taskbridge_ledger WHERE state = 'sent' AND tm_status IN \
                ('claimed','completed','failed') LIMIT ?
                """,
                [budget * 4])
            let pending =
                """
                SELECT \(Ledger.entryColumns) FROM _taskbridge_ledger WHERE state = 'sent' AND tm_status IN
                    ('pending','pending (retry)') \
                ORDER BY tm_task_id
                """
            c.edges = try fetch(pending + " ASC LIMIT ?", [edge]) + fetch(pending + " DESC LIMIT ?", [edge])
            c.due = try fetch(
                """
                SELECT \(Ledger.entryColumns) FROM _taskbridge_ledger WHERE state = 'sent' AND next_attempt_at <= ?
                    ORDER BY \
                next_attempt_at LIMIT ?
                """,
                [now, budget])
            return c
        }
    }

    public func inFlight(taskIDs: [Int64]) async throws -> [LedgerEntry] {
        guard !taskIDs.isEmpty else { return [] }
        return try await asyncRead { db in
            var out: [LedgerEntry] = []
            for chunk in stride(from: 0, to: taskIDs.count, by: 500).map({
                Array(taskIDs[$0..<min($0 + 500, taskIDs.count)])
            }) {
                let marks = chunk.map { _ in "?" }.joined(separator: ",")
                out += try Row.fetchAll(
                    db,
                    sql:
                        """
                        SELECT \(Ledger.entryColumns) FROM _taskbridge_ledger WHERE state = 'sent' AND tm_task_id IN \
                        (\(marks))
                        """,
                    arguments: StatementArguments(chunk)
                ).map(LedgerEntry.init)
            }
            return out
        }
    }

    public func quarantineList(taskType: String? = nil) async throws -> [QuarantineEntry] {
        try await asyncRead { db in
            guard try db.tableExists("_taskbridge_quarantine") else { return [] }
            return try Row.fetchAll(
                db,
                sql:
                    "SELECT * FROM _taskbridge_quarantine \(taskType == nil ? "" : "WHERE task_type = ?") ORDER "
                    + "BY legacy_id",
                arguments: taskType.map { [$0] } ?? []
            ).map {
                QuarantineEntry(
                    legacyID: $0["legacy_id"], taskType: $0["task_type"], reason: $0["reason"], detail: $0["detail"],
                    attempts: $0["attempts"], firstAt: $0["first_at"], lastAt: $0["last_at"])
            }
        }
    }
}
