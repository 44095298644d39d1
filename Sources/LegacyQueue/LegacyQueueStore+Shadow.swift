import Foundation
import GRDB

/// The shadow stage's reads and writes (`ShadowLedger` owns the SQL).
extension LegacyQueueStore {
    public func shadowIntents(limit: Int) async throws -> [ShadowLedger.Intent] {
        try await asyncRead { db in
            guard try db.tableExists(ShadowLedger.table) else { return [] }
            return try ShadowLedger.intents(db, limit: limit)
        }
    }

    public func recordShadowSent(_ sent: [(ShadowLedger.Key, Int64)], refused: [(ShadowLedger.Key, String)])
        async throws
    {
        guard !sent.isEmpty || !refused.isEmpty else { return }
        let now = Date().timeIntervalSince1970
        try await writeLedger { db in
            for (key, id) in sent { try ShadowLedger.recordSent(db, key, taskID: id, at: now) }
            for (key, error) in refused { try ShadowLedger.recordRefused(db, key, error: error) }
        }
    }

    /// Sent copies not looked at for `interval` seconds, with their legacy rows.
    public func shadowPending(interval: Double, limit: Int) async throws -> [ShadowLedger.Pending] {
        let t = table, hasResult = schema.columns.contains("result_data")
        let before = Date().timeIntervalSince1970 - interval
        return try await asyncRead { db in
            guard try db.tableExists(ShadowLedger.table) else { return [] }
            return try ShadowLedger.pending(
                db, legacyTable: t, hasResult: hasResult, generation: try Ledger.generation(db), before: before,
                limit: limit)
        }
    }

    /// Records what one pass decided: the comparisons (returned: those this
    /// call recorded, for the counters) and the entries only looked at.
    public func recordShadowPass(
        compared: [(ShadowLedger.Key, String, ShadowLedger.Comparison)], checked: [ShadowLedger.Key]
    ) async throws -> [(taskType: String, outcome: ShadowLedger.Outcome)] {
        guard !compared.isEmpty || !checked.isEmpty else { return [] }
        let now = Date().timeIntervalSince1970
        return try await writeLedger { db in
            var recorded: [(String, ShadowLedger.Outcome)] = []
            for (key, type, c) in compared where try ShadowLedger.recordComparison(db, key, c, at: now) {
                recorded.append((type, c.outcome))
            }
            try ShadowLedger.recordChecked(db, checked, at: now)
            return recorded
        }
    }

    /// Copies sent and not yet compared or expired.
    public func shadowSentCount() async throws -> Int {
        try await asyncRead { db in
            guard try db.tableExists(ShadowLedger.table) else { return 0 }
            return try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM _taskbridge_shadow WHERE state = 'sent'") ?? 0
        }
    }

    public func shadowUncleared(limit: Int) async throws -> [(tmType: String, taskID: Int64)] {
        try await asyncRead { db in
            guard try db.tableExists(ShadowLedger.table) else { return [] }
            return try ShadowLedger.uncleared(db, limit: limit)
        }
    }

    public func recordShadowCleared(_ taskIDs: [Int64]) async throws {
        guard !taskIDs.isEmpty else { return }
        try await writeLedger { db in try ShadowLedger.recordCleared(db, taskIDs: taskIDs) }
    }

    /// Which of these tasks are shadow copies: never a row's task, so verify
    /// counts them neither as missing nor as extra.
    public func shadowTaskIDs(among ids: [Int64]) async throws -> Set<Int64> {
        guard !ids.isEmpty else { return [] }
        return try await asyncRead { db in
            guard try db.tableExists(ShadowLedger.table) else { return [] }
            return try ShadowLedger.copies(db, among: ids)
        }
    }

    /// Per type, the figures of the shadow report; `window` is the number of
    /// latest comparisons the gate reads, `examples` how many per field.
    public func shadowFigures(
        types: [String]? = nil, window: [String: Int], examples: Int, since: Double? = nil
    ) async throws -> [ShadowFigures] {
        try await asyncRead { db in
            guard try db.tableExists(ShadowLedger.table) else { return [] }
            return try ShadowFigures.read(db, types: types, window: window, examples: examples, since: since)
        }
    }
}

/// One type's shadow figures, as the report, status, the page and the gate
/// read them. `compared` counts decided comparisons (matched + mismatched);
/// expired and refused copies are counted apart, never as mismatches.
public struct ShadowFigures: Sendable, Equatable {
    public struct Field: Sendable, Equatable {
        public var path: String
        public var mismatched: Int
        public var examples: [Example]
    }
    public struct Example: Sendable, Equatable {
        public var legacyID: Int64
        public var legacy: String?
        public var taskManager: String?
    }
    public struct Minute: Sendable, Equatable {
        public var minute: Int64
        public var matched: Int
        public var mismatched: Int
    }

    public var taskType: String
    public var matched = 0
    public var byOutcome: [ShadowLedger.Outcome: Int] = [:]
    public var pending = 0
    public var expired = 0
    public var refused = 0
    /// The latest comparisons, at most the gate's window, and how many matched.
    public var recentCompared = 0
    public var recentMatched = 0
    /// Differing fields, most frequent first.
    public var fields: [Field] = []
    public var perMinute: [Minute] = []

    public init(taskType: String) { self.taskType = taskType }

    public var mismatched: Int { byOutcome.filter { $0.key.isMismatch }.values.reduce(0, +) }
    public var compared: Int { matched + mismatched }
    public var matchRate: Double? { compared == 0 ? nil : Double(matched) / Double(compared) }

    static func read(
        _ db: Database, types: [String]?, window: [String: Int], examples: Int, since: Double?
    ) throws -> [ShadowFigures] {
        var byType: [String: ShadowFigures] = [:]
        for r in try Row.fetchAll(
            db, sql: "SELECT task_type, state, outcome, COUNT(*) FROM _taskbridge_shadow GROUP BY 1, 2, 3")
        {
            let type: String = r[0], state: String = r[1], n: Int = r[3]
            if let types, !types.contains(type) { continue }
            var f = byType[type] ?? ShadowFigures(taskType: type)
            switch ShadowLedger.State(rawValue: state) {
            case .intent, .sent: f.pending += n
            case .expired: f.expired += n
            case .refused: f.refused += n
            case .compared:
                if let o = (r[2] as String?).flatMap(ShadowLedger.Outcome.init(rawValue:)) {
                    if o == .matched { f.matched += n } else { f.byOutcome[o, default: 0] += n }
                }
            case nil: break
            }
            byType[type] = f
        }
        for type in byType.keys {
            var f = byType[type]!
            let outcomes = try String.fetchAll(
                db,
                sql: """
                    SELECT outcome FROM _taskbridge_shadow WHERE task_type = ? AND state = 'compared'
                    ORDER BY compared_at DESC, legacy_id DESC LIMIT ?
                    """, arguments: [type, window[type] ?? 100])
            f.recentCompared = outcomes.count
            f.recentMatched = outcomes.filter { $0 == ShadowLedger.Outcome.matched.rawValue }.count
            for r in try Row.fetchAll(
                db,
                sql: """
                    SELECT j.value ->> 'path', COUNT(*) FROM _taskbridge_shadow s, json_each(s.fields) j
                    WHERE s.task_type = ? AND s.state = 'compared' AND s.fields IS NOT NULL
                    GROUP BY 1 ORDER BY 2 DESC, 1
                    """, arguments: [type])
            {
                let path: String = r[0]
                let ex = try Row.fetchAll(
                    db,
                    sql: """
                        SELECT s.legacy_id, j.value ->> 'legacy', j.value ->> 'taskmanager'
                        FROM _taskbridge_shadow s, json_each(s.fields) j
                        WHERE s.task_type = ? AND s.state = 'compared' AND j.value ->> 'path' = ?
                        ORDER BY s.compared_at DESC, s.legacy_id DESC LIMIT ?
                        """, arguments: [type, path, examples]
                ).map { Example(legacyID: $0[0], legacy: $0[1], taskManager: $0[2]) }
                f.fields.append(Field(path: path, mismatched: r[1], examples: ex))
            }
            if let since {
                f.perMinute = try Row.fetchAll(
                    db,
                    sql: """
                        SELECT CAST(compared_at / 60 AS INTEGER), SUM(outcome = 'matched'),
                            SUM(outcome NOT IN ('matched','expired'))
                        FROM _taskbridge_shadow WHERE task_type = ? AND state = 'compared' AND compared_at >= ?
                        GROUP BY 1 ORDER BY 1
                        """, arguments: [type, since]
                ).map { Minute(minute: $0[0], matched: $0[1], mismatched: $0[2]) }
            }
            byType[type] = f
        }
        return byType.values.sorted { $0.taskType < $1.taskType }
    }
}
