import Foundation
import GRDB
import SQLiteText
import TaskManagerModel

/// The only writer of `task_queue` rows on the bridge's behalf: every
/// statement that changes a legacy row is here, the insert and re-queue
/// triggers' claim included, so the rules a legacy row is written by (the
/// schema's CHECKs, legacy timestamps, free text kept byte for byte, never a
/// row another worker holds) are read in one place. Callers (`Ledger`,
/// `ReverseLedger`, the store's backlog claim) decide *whether* to write;
/// this type decides *how*. `_taskbridge_changes` has its owner too:
/// `ChangeLog`.
public enum LegacyRows {
    /// The trigger's claim of a new or re-queued row (`row` is `NEW`).
    static func claimAtTriggerSQL(table t: String, bridge b: String, now: String, extraCondition: String?) -> String {
        "UPDATE \(t) SET status = 'claimed', claimed_by = \(b), claimed_at = \(now), updated_at = \(now) "
            + "WHERE id = NEW.id AND status = 'queued'" + (extraCondition.map { " AND \($0)" } ?? "")
    }

    /// queued -> claimed by the bridge, with the legacy claim protocol (the
    /// caller's `BEGIN IMMEDIATE`), only if the row is still queued, still in
    /// the bridge's share and still holds the parameters that were decided.
    static func claimQueued(
        _ db: Database, table t: String, id: Int64, parameters: [UInt8]?, bridgeID: String, now: String
    ) throws -> Bool {
        try db.exec(
            sql: """
                UPDATE \(t) SET status = 'claimed', claimed_by = ?, claimed_at = ?, updated_at = ?
                WHERE id = ? AND status = 'queued' AND CAST(parameters AS BLOB) IS ?
                    AND \(Canary.bridgeTakesSQL(t))
                """,
            arguments: [bridgeID, now, now, id, parameters.map { Data($0) }])
        return db.changesCount > 0
    }

    /// Shows a quarantine to legacy tooling in `error_message`; only in the
    /// entry's own row (`guardSQL` checks the fingerprint).
    static func noteQuarantine(
        _ db: Database, table: String, id: Int64, bridgeID: String, text: String, now: String, guardSQL: String
    ) throws {
        try db.exec(
            sql: """
                UPDATE \(table) SET error_message = CAST(? AS TEXT), updated_at = ?
                WHERE id = ? AND claimed_by = ? AND status IN ('claimed','running') AND \(guardSQL)
                """,
            arguments: [SQLiteText.bind(text), now, id, bridgeID, id])
    }

    /// Clears the quarantine note of a released row.
    static func clearQuarantineNote(
        _ db: Database, table: String, id: Int64, bridgeID: String, now: String, guardSQL: String
    ) throws {
        try db.exec(
            sql: """
                UPDATE \(table) SET error_message = NULL, updated_at = ?
                WHERE id = ? AND claimed_by = ? AND error_message LIKE 'taskbridge quarantine%' AND
                    \(guardSQL)
                """,
            arguments: [now, id, bridgeID, id])
    }

    /// TaskManager's status (and, when terminal, result and error) into a row
    /// the bridge still holds in flight: a terminal row never regresses.
    /// Returns whether the row changed.
    static func mirror(
        _ db: Database, table: String, id: Int64, bridgeID: String, status legacy: LegacyStatus, attempts: Int64?,
        retryColumns: Bool, result: JSONValue?, error: String?, now: String
    ) throws -> Bool {
        var sets = ["status = ?", "updated_at = ?"]
        var args: [(any DatabaseValueConvertible)?] = [legacy.rawValue, now]
        if retryColumns, let a = attempts {
            // TaskManager counts claims; legacy counts retries, capped by its CHECK.
            sets.append("retry_count = MIN(?, max_retries)")
            args.append(max(a - 1, 0))
        }
        if legacy.isTerminal {
            // The error is free text from a worker: every byte of it (SQLiteText).
            sets += ["completed_at = ?", "result_data = ?", "error_message = CAST(? AS TEXT)"]
            args += [now, result.map(PHPJSON.encode), SQLiteText.bind(error)]
        }
        args += [id, bridgeID]
        try db.exec(
            sql:
                "UPDATE \(table) SET \(sets.joined(separator: ", ")) WHERE id = ? AND claimed_by = ? AND "
                + "status IN ('claimed','running')",
            arguments: StatementArguments(args))
        return db.changesCount > 0
    }

    /// `verify --repair`: the task's status into the entry's own row even if
    /// the row left flight behind the bridge (a terminal status), never
    /// moving a finished row back in flight (a non-terminal one).
    static func forceStatus(
        _ db: Database, table: String, id: Int64, bridgeID: String, status legacy: LegacyStatus, result: JSONValue?,
        error: String?, now: String, guardSQL: String
    ) throws -> Bool {
        if legacy.isTerminal {
            try db.exec(
                sql: """
                    UPDATE \(table) SET status = ?, completed_at = ?, result_data = ?, error_message = CAST(? AS
                        TEXT),
                        updated_at = ? WHERE id = ? AND claimed_by = ? AND \(guardSQL)
                    """,
                arguments: [
                    legacy.rawValue, now, result.map(PHPJSON.encode), SQLiteText.bind(error), now, id, bridgeID, id,
                ])
        } else {
            try db.exec(
                sql: """
                    UPDATE \(table) SET status = ?, updated_at = ?
                    WHERE id = ? AND claimed_by = ? AND status IN ('claimed','running') AND \(guardSQL)
                    """,
                arguments: [legacy.rawValue, now, id, bridgeID, id])
        }
        return db.changesCount > 0
    }

    /// A reverse type's task as a queued legacy row, as a PrismQ producer
    /// writes one. Returns the new row's id.
    static func insertQueued(
        _ db: Database, table: String, taskType: String, parameters: String, priority: Int64, now: String
    ) throws -> Int64 {
        try db.exec(
            sql: """
                INSERT INTO \(table) (task_type, parameters, priority, status, created_at, updated_at)
                VALUES (?, CAST(? AS TEXT), ?, 'queued', ?, ?)
                """,
            arguments: [taskType, SQLiteText.bind(parameters), priority, now, now])
        return db.lastInsertedRowID
    }
}

/// The only writer of `_taskbridge_changes`: the triggers append (their SQL
/// comes from here), capture consumes, and a row the bridge must decide
/// again (released from quarantine, adopted by repair) is announced.
public enum ChangeLog {
    static let table = "_taskbridge_changes"

    /// A trigger's append (`ref` is `NEW` or `OLD`).
    static func appendSQL(_ ref: String, op: String) -> String {
        "INSERT INTO _taskbridge_changes (row_id, op) VALUES (\(ref).id, '\(op)')"
    }

    /// Capture will decide this row again, as if it had just been inserted.
    static func announce(_ db: Database, rowID: Int64) throws {
        try db.exec(sql: "INSERT INTO _taskbridge_changes (row_id, op) VALUES (?, 'I')", arguments: [rowID])
    }

    /// Change rows up to `maxSeq` are consumed, except those of rows that
    /// changed while they were decided (`keeping`): those come back.
    static func consume(_ db: Database, upTo maxSeq: Int64, keeping: Set<Int64>) throws {
        if keeping.isEmpty {
            try db.exec(sql: "DELETE FROM _taskbridge_changes WHERE seq <= ?", arguments: [maxSeq])
            return
        }
        let keep = Array(keeping)
        var args = StatementArguments([maxSeq])
        args += StatementArguments(keep)
        try db.exec(
            sql:
                "DELETE FROM _taskbridge_changes WHERE seq <= ? AND row_id NOT IN "
                + "(\(keep.map { _ in "?" }.joined(separator: ",")))",
            arguments: args)
    }
}
