import Foundation
import GRDB

/// Read-only views for operators (the dashboard and `status`): each one short
/// read transaction, none of them on the capture or send path.
extension LegacyQueueStore {
    /// Rows forwarded and mirrored per minute over the last `minutes`
    /// minutes, per type, oldest bucket first. Counted from the ledger's own
    /// `sent_at`/`done_at` (always written by the bridge in one format, so
    /// they compare as text); archived entries are not counted.
    public func perMinute(minutes: Int = 60, now: Date = Date()) async throws -> [String: ThroughputSeries] {
        let end = floor(now.timeIntervalSince1970 / 60) * 60 + 60
        let start = end - Double(minutes) * 60
        let since = LegacyTimestamp.format(Date(timeIntervalSince1970: start))
        return try await asyncRead { db in
            guard try db.tableExists(Ledger.table) else { return [:] }
            var out: [String: ThroughputSeries] = [:]
            for (column, isSent) in [("sent_at", true), ("done_at", false)] {
                let rows = try Row.fetchAll(
                    db,
                    sql: """
                        SELECT task_type, substr(\(column), 1, 16) AS minute, COUNT(*) AS n FROM \(Ledger.table)
                        WHERE \(column) >= ? GROUP BY task_type, minute
                        """, arguments: [since])
                for r in rows {
                    let type: String = r[0]
                    guard let text: String = r[1], let at = LegacyTimestamp.parse(text) else { continue }
                    let bucket = Int((at.timeIntervalSince1970 - start) / 60)
                    guard bucket >= 0, bucket < minutes else { continue }
                    var s = out[type] ?? ThroughputSeries(minutes: minutes, startEpoch: start)
                    if isSent { s.forwarded[bucket] += r[2] } else { s.mirrored[bucket] += r[2] }
                    out[type] = s
                }
            }
            return out
        }
    }

    /// The most frequent reasons dry-run would reject rows, per type.
    public func dryRunRejectReasons(top: Int = 5) async throws -> [String: [(reason: String, count: Int)]] {
        try await asyncRead { db in
            guard try db.tableExists("_taskbridge_dryrun") else { return [:] }
            var out: [String: [(reason: String, count: Int)]] = [:]
            for r in try Row.fetchAll(
                db,
                sql: """
                    SELECT task_type, COALESCE(reason, '') AS reason, COUNT(*) AS n FROM _taskbridge_dryrun
                    WHERE verdict = 'would-reject' GROUP BY task_type, reason ORDER BY n DESC, reason
                    """)
            {
                let type: String = r[0]
                if (out[type]?.count ?? 0) < top { out[type, default: []].append((r[1], r[2])) }
            }
            return out
        }
    }

    /// One page of the quarantine, oldest id first, and how many rows match.
    public func quarantinePage(
        taskType: String?, offset: Int, limit: Int
    ) async throws -> (total: Int, entries: [QuarantineEntry]) {
        try await asyncRead { db in
            guard try db.tableExists(Ledger.quarantineTable) else { return (0, []) }
            let filter = taskType == nil ? "" : "WHERE task_type = ?"
            let args: StatementArguments = taskType.map { [$0] } ?? []
            let total =
                try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM \(Ledger.quarantineTable) \(filter)", arguments: args)
                ?? 0
            let entries = try Row.fetchAll(
                db,
                sql: "SELECT * FROM \(Ledger.quarantineTable) \(filter) ORDER BY legacy_id LIMIT ? OFFSET ?",
                arguments: args + [limit, offset]
            ).map {
                QuarantineEntry(
                    legacyID: $0["legacy_id"], taskType: $0["task_type"], reason: $0["reason"], detail: $0["detail"],
                    attempts: $0["attempts"], firstAt: $0["first_at"], lastAt: $0["last_at"])
            }
            return (total, entries)
        }
    }

    /// The file as SQLite sees it: journal mode, WAL size, page figures.
    public func fileInfo() async throws -> LegacyFileInfo {
        let path = self.path
        let journal = try await asyncRead { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") ?? "unknown" }
        func size(_ p: String) -> Int64? {
            (try? FileManager.default.attributesOfItem(atPath: p)[.size] as? NSNumber)?.int64Value
        }
        return LegacyFileInfo(
            path: path, journalMode: journal, fileBytes: size(path), walBytes: size(path + "-wal"))
    }
}

public struct ThroughputSeries: Sendable, Equatable {
    /// Epoch seconds of the first bucket's start.
    public var startEpoch: Double
    public var forwarded: [Int]
    public var mirrored: [Int]
    public init(minutes: Int, startEpoch: Double) {
        self.startEpoch = startEpoch
        forwarded = Array(repeating: 0, count: minutes)
        mirrored = Array(repeating: 0, count: minutes)
    }
}

public struct LegacyFileInfo: Sendable, Equatable {
    public var path: String
    public var journalMode: String
    public var fileBytes: Int64?
    public var walBytes: Int64?
}
