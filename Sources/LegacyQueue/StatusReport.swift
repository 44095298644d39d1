import Foundation
import GRDB

/// Per-type counters for `taskbridge status`, read from the legacy table and
/// the ledger in one short read transaction.
public struct TypeStatus: Sendable, Equatable {
    public var taskType: String
    public var mode: String?
    /// The canary share of `forward` (100 otherwise).
    public var percent = 100
    /// Rows the bridge never held: queued for, or executed by, legacy workers.
    public var leftToLegacy = 0
    /// Reverse entries by state (tasks turned into rows, and back).
    public var reverse: [ReverseLedger.State: Int] = [:]
    public var queued = 0
    public var legacyInFlight = 0
    public var inFlight = 0
    public var forwarded = 0
    public var mirrored = 0
    public var quarantined = 0
    public var collapsed = 0
    public var dryRunForward = 0
    public var dryRunReject = 0
    /// Live parity findings among sampled rows (see `taskbridge verify`).
    public var parityFindings = 0
    /// Seconds since the oldest row that is due but not yet a TaskManager task.
    public var oldestUnforwardedAge: Double?

    public init(taskType: String) { self.taskType = taskType }
}

extension LegacyQueueStore {
    public func statusReport(now: Date = Date()) async throws -> [TypeStatus] {
        let t = table, b = bridgeID
        return try await asyncRead { db in
            var byType: [String: TypeStatus] = [:]
            func with(_ type: String, _ f: (inout TypeStatus) -> Void) {
                var s = byType[type] ?? TypeStatus(taskType: type)
                f(&s)
                byType[type] = s
            }
            let hasObjects = try db.tableExists("_taskbridge_ledger")
            if hasObjects {
                for r in try Row.fetchAll(db, sql: "SELECT task_type, mode, percent FROM _taskbridge_mode") {
                    with(r["task_type"]) {
                        $0.mode = r["mode"]
                        $0.percent = r["percent"]
                    }
                }
            }
            for r in try Row.fetchAll(
                db,
                sql: """
                    SELECT task_type, SUM(status = 'queued') AS q,
                           SUM(status IN ('claimed','running') AND (claimed_by IS NOT ? OR claimed_by IS NULL)) AS lf,
                           SUM(claimed_by IS NOT ? OR claimed_by IS NULL) AS legacy
                    FROM \(t) GROUP BY task_type
                    """, arguments: [b, b])
            {
                let type: String = r["task_type"] ?? ""
                with(type) {
                    $0.queued = r["q"] ?? 0; $0.legacyInFlight = r["lf"] ?? 0
                    $0.leftToLegacy = r["legacy"] ?? 0
                }
            }
            guard hasObjects else { return byType.values.sorted { $0.taskType < $1.taskType } }
            for r in try Row.fetchAll(
                db,
                sql: """
                    SELECT task_type,
                           SUM(state IN ('intent','sent')) AS inflight,
                           SUM(tm_task_id IS NOT NULL) AS fwd,
                           SUM(state = 'done') AS done,
                           SUM(state = 'quarantined') AS q,
                           SUM(collapsed) AS c
                    FROM _taskbridge_ledger GROUP BY task_type
                    """)
            {
                with(r["task_type"]) {
                    $0.inFlight = r["inflight"] ?? 0
                    $0.forwarded = r["fwd"] ?? 0
                    $0.mirrored = r["done"] ?? 0
                    $0.quarantined = r["q"] ?? 0
                    $0.collapsed = r["c"] ?? 0
                }
            }
            if try db.tableExists(ReverseLedger.table) {
                for r in try Row.fetchAll(
                    db, sql: "SELECT task_type, state, COUNT(*) FROM _taskbridge_reverse GROUP BY task_type, state")
                {
                    if let s = ReverseLedger.State(rawValue: r[1]) { with(r[0]) { $0.reverse[s] = r[2] } }
                }
            }
            if try db.tableExists("_taskbridge_parity") {
                for r in try Row.fetchAll(
                    db, sql: "SELECT task_type, COUNT(*) AS n FROM _taskbridge_parity GROUP BY task_type")
                {
                    with(r["task_type"]) { $0.parityFindings = r["n"] }
                }
            }
            for r in try Row.fetchAll(
                db, sql: "SELECT task_type, verdict, COUNT(*) AS n FROM _taskbridge_dryrun GROUP BY task_type, verdict")
            {
                let n: Int = r["n"]
                with(r["task_type"]) {
                    if (r["verdict"] as String) == "would-forward" { $0.dryRunForward = n } else { $0.dryRunReject = n }
                }
            }
            let nowEpoch = now.timeIntervalSince1970
            for r in try Row.fetchAll(
                db,
                sql:
                    """
                    SELECT task_type, MIN(claimed_at) AS oldest FROM _taskbridge_ledger WHERE state = 'intent' AND \
                    due_at <= ? GROUP BY task_type
                    """,
                arguments: [nowEpoch])
            {
                if let text: String = r["oldest"], let d = LegacyTimestamp.parse(text) {
                    with(r["task_type"]) { $0.oldestUnforwardedAge = max(0, nowEpoch - d.timeIntervalSince1970) }
                }
            }
            return byType.values.sorted { $0.taskType < $1.taskType }
        }
    }
}

/// One bridge per legacy file: an exclusive `flock` on `<database>.taskbridge.lock`,
/// released by the kernel if the process dies.
public final class BridgeLock: Sendable {
    public let path: String
    let fd: Int32

    public enum LockError: Error, CustomStringConvertible {
        case held(String)
        case cannotOpen(String, Int32)
        public var description: String {
            switch self {
            case .held(let p): return "another taskbridge is already running on this database (lock \(p) is held)"
            case .cannotOpen(let p, let e): return "cannot open lock file \(p): \(String(cString: strerror(e)))"
            }
        }
    }

    public init(databasePath: String) throws {
        path = databasePath + ".taskbridge.lock"
        let fd = Foundation.open(path, O_RDWR | O_CREAT, 0o644)
        guard fd >= 0 else { throw LockError.cannotOpen(path, errno) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            throw LockError.held(path)
        }
        self.fd = fd
    }

    deinit {
        flock(fd, LOCK_UN)
        close(fd)
    }
}
