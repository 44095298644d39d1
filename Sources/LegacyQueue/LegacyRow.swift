import Foundation
import GRDB

/// One `task_queue` row as the bridge reads it. `parameters` is read as raw
/// bytes so that invalid UTF-8 is seen, not silently repaired.
public struct LegacyRow: Sendable, Equatable {
    public var id: Int64
    public var taskType: String
    public var parameters: [UInt8]?
    public var priority: Int64?
    public var runAfter: String?
    public var status: String?
    public var claimedBy: String?
    public var claimedAt: String?
    public var retryCount: Int64?
    public var maxRetries: Int64?
    public var resultData: String?
    public var errorMessage: String?
    public var createdAt: String?
    public var updatedAt: String?
    public var completedAt: String?
    /// `Ledger.fingerprintSQL` of the row as read (nil when not selected).
    public var fingerprint: String?

    static func selectSQL(_ schema: LegacySchema) -> String {
        let opt = { (c: String) in schema.columns.contains(c) ? c : "NULL AS \(c)" }
        return """
            SELECT id, task_type, CAST(parameters AS BLOB) AS parameters_blob, \(opt("priority")),
                \(opt("run_after_utc")),
                   status, claimed_by, claimed_at, \(opt("retry_count")), \(opt("max_retries")),
                   CAST(result_data AS BLOB) AS result_data, CAST(error_message AS BLOB) AS error_message,
                   created_at, updated_at, completed_at, \(Ledger.fingerprintSQL()) AS fingerprint
            FROM "\(schema.table)"
            """
    }

    /// Reads leniently: A-min has no CHECKs and no strict types, so any
    /// column may hold any storage class, and a bad row must never crash.
    /// By position, in `selectSQL`'s order (a lookup by name lowercases the
    /// name for every column of every row).
    init(row: Row) {
        func text(_ i: Int) -> String? {
            let v: DatabaseValue = row[i]
            switch v.storage {
            case .null: return nil
            case .string(let s): return s
            case .int64(let i): return String(i)
            case .double(let d): return String(d)
            case .blob(let b): return String(decoding: b, as: UTF8.self)
            }
        }
        func int(_ i: Int) -> Int64? {
            let v: DatabaseValue = row[i]
            switch v.storage {
            case .int64(let i): return i
            case .double(let d) where d == d.rounded() && abs(d) < 9e18: return Int64(d)
            case .string(let s): return Int64(s.trimmingCharacters(in: .whitespaces))
            default: return nil
            }
        }
        id = int(0) ?? 0
        taskType = text(1) ?? ""
        let p: DatabaseValue = row[2]
        switch p.storage {
        case .null: parameters = nil
        case .blob(let b): parameters = [UInt8](b)
        case .string(let s): parameters = Array(s.utf8)
        case .int64(let i): parameters = Array(String(i).utf8)
        case .double(let d): parameters = Array(String(d).utf8)
        }
        priority = int(3)
        runAfter = text(4)
        status = text(5)
        claimedBy = text(6)
        claimedAt = text(7)
        retryCount = int(8)
        maxRetries = int(9)
        resultData = text(10)
        errorMessage = text(11)
        createdAt = text(12)
        updatedAt = text(13)
        completedAt = text(14)
        fingerprint = row.count > 15 ? text(15) : nil
    }

    /// Whether the row reads the same as `other` for the bridge's decisions:
    /// status, holder, fingerprint and parameter bytes.
    public func sameSnapshot(as other: LegacyRow) -> Bool {
        status == other.status && claimedBy == other.claimedBy && fingerprint == other.fingerprint
            && parameters == other.parameters
    }
}

/// A row of `_taskbridge_ledger`: the bridge's write-ahead record of one
/// forwarded legacy row.
public struct LedgerEntry: Sendable, Equatable {
    public typealias State = Ledger.State
    public var legacyID: Int64
    public var taskType: String
    public var tmType: String
    public var state: State
    public var paramsJSON: String?
    public var dedupeKey: String?
    public var priority: Int64?
    public var dueAt: Double
    public var tmTaskID: Int64?
    public var tmStatus: String?
    public var collapsed: Bool
    public var attempts: Int64
    public var nextAttemptAt: Double
    public var lastError: String?
    public var claimedAt: String
    public var generation: Int64
    /// The fingerprint of the row the entry was made for (nil: made before
    /// fingerprints existed; it matches any row).
    public var fingerprint: String?
    public var updatedAt: String?
    /// Consecutive identical server errors of this row's sends, and when the
    /// run began (the persistent-error policy's evidence).
    public var errorStreak: Int64
    public var streakStartedAt: Double?

    /// From a row selected with `Ledger.entryColumns`, by position.
    init(row: Row) {
        legacyID = row[0]
        taskType = row[1]
        tmType = row[2]
        state = State(rawValue: row[3]) ?? .intent
        paramsJSON = row[4]
        dedupeKey = row[5]
        priority = row[6]
        dueAt = row[7]
        tmTaskID = row[8]
        tmStatus = row[9]
        collapsed = (row[10] as Int64? ?? 0) != 0
        attempts = row[11]
        nextAttemptAt = row[12]
        lastError = row[13]
        claimedAt = row[14]
        updatedAt = row[15]
        errorStreak = row[16] ?? 0
        streakStartedAt = row[17]
        generation = row[18] ?? 1
        fingerprint = row[19]
    }

    /// An entry as a value (the planner's tests and tools; the ledger itself
    /// is written only by `Ledger`).
    public init(
        legacyID: Int64, taskType: String, tmType: String, state: State, tmTaskID: Int64? = nil,
        tmStatus: String? = nil,
        claimedAt: String, nextAttemptAt: Double = 0
    ) {
        self.legacyID = legacyID
        self.taskType = taskType
        self.tmType = tmType
        self.state = state
        paramsJSON = nil
        dedupeKey = nil
        priority = nil
        dueAt = 0
        self.tmTaskID = tmTaskID
        self.tmStatus = tmStatus
        collapsed = false
        attempts = 0
        self.nextAttemptAt = nextAttemptAt
        lastError = nil
        self.claimedAt = claimedAt
        updatedAt = nil
        errorStreak = 0
        streakStartedAt = nil
        generation = 1
        fingerprint = nil
    }

    /// The entry still applies to `row`: the same row (fingerprint), and not
    /// put back in the queue (a re-queued row is captured again as new).
    public func applies(to row: LegacyRow) -> Bool {
        guard LegacyStatus(text: row.status) != .queued else { return false }
        guard let fingerprint else { return true }
        return fingerprint == row.fingerprint
    }
}

public struct QuarantineEntry: Sendable, Equatable {
    public var legacyID: Int64
    public var taskType: String
    public var reason: String
    public var detail: String
    public var attempts: Int64
    public var firstAt: String
    public var lastAt: String
}

public struct AuditEntry: Sendable, Equatable {
    public var at: String
    public var taskType: String
    public var from: String?
    public var to: String
    public var reason: String?
    public var host: String?
    public var actor: String?
    /// `cutover` (a mode change) or `quarantine-retry`.
    public var action: String
    /// The canary share a cutover set (nil in entries from before version 5).
    public var percent: Int?
}
