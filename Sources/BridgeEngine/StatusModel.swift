import BridgeConfig
import Foundation
import LegacyQueue
import TaskManagerModel

/// The per-type status model: what `status --json` prints and what a running
/// bridge serves at `/status.json` on its metrics listener, built by this one
/// function so that the two can never disagree.
public enum StatusModel {
    public struct View: Sendable {
        public var json: JSONValue
        public var table: [[String]]
        public var header: String
    }

    public static let columns = [
        "type", "mode", "queued", "in-flight", "forwarded", "mirrored", "quarantined", "collapsed", "lag", "drift",
        "reverse held/done/conflicts", "shadow",
    ]

    public static func build(config: BridgeConfiguration, store: LegacyQueueStore) async throws -> View {
        let report = try await store.statusReport()
        let health = try await store.objectsHealth()
        // Rows a legacy worker executed while the insert trigger was missing
        // (issue 14): counted per type, listed by `verify`.
        let executed = Dictionary(grouping: try await store.rowsExecutedByLegacy(), by: \.taskType).mapValues(\.count)
        let shadows = Dictionary(
            try await ShadowReport.build(
                config: config, store: store, examples: 1, perMinuteSince: Date().timeIntervalSince1970 - 3_600
            ).map { ($0.figures.taskType, $0) }, uniquingKeysWith: { a, _ in a })
        var rows: [JSONValue] = []
        var table: [[String]] = []
        for s in report {
            let shadow = shadows[s.taskType]
            let fileMode = config.mapping(forLegacyType: s.taskType)?.mode.rawValue
            let mode = s.mode ?? "off"
            let differs = fileMode != nil && fileMode != mode
            rows.append([
                "task_type": .string(s.taskType), "mode": .string(mode),
                "percent": .int(
                    Int64(BridgeMode(rawValue: mode)?.takesPercent == true ? s.percent : (mode == "retired" ? 100 : 0))),
                "left_to_legacy": .int(Int64(s.leftToLegacy)),
                "file_mode": fileMode.map { .string($0) } ?? .null,
                "mapped": .bool(fileMode != nil), "queued": .int(Int64(s.queued)),
                "legacy_in_flight": .int(Int64(s.legacyInFlight)),
                "in_flight": .int(Int64(s.inFlight)), "forwarded": .int(Int64(s.forwarded)),
                "mirrored": .int(Int64(s.mirrored)),
                "quarantined": .int(Int64(s.quarantined)), "collapsed": .int(Int64(s.collapsed)),
                "dry_run_would_forward": .int(Int64(s.dryRunForward)),
                "dry_run_would_reject": .int(Int64(s.dryRunReject)),
                "oldest_unforwarded_age_seconds": s.oldestUnforwardedAge.map { .double($0) } ?? .null,
                "live_parity_findings": .int(Int64(s.parityFindings)),
                "executed_by_legacy": .int(Int64(executed[s.taskType] ?? 0)),
                "reverse_held": .int(Int64((s.reverse[.inserted] ?? 0) + (s.reverse[.completing] ?? 0))),
                "reverse_completing": .int(Int64(s.reverse[.completing] ?? 0)),
                "reverse_done": .int(Int64(s.reverse[.done] ?? 0)),
                "reverse_conflicts": .int(Int64(s.reverse[.conflict] ?? 0)),
                "reverse_lost": .int(Int64(s.reverse[.lost] ?? 0)),
                "shadow": shadow.map(ShadowReport.json) ?? .null,
            ])
            table.append([
                s.taskType,
                ModeState(mode: mode, percent: s.percent).label
                    + (differs ? " (file: \(fileMode!))" : "") + (fileMode == nil ? " (unmapped)" : ""),
                "\(s.queued)", "\(s.inFlight)", "\(s.forwarded)", "\(s.mirrored)", "\(s.quarantined)", "\(s.collapsed)",
                ageText(s.oldestUnforwardedAge), "\(s.parityFindings)",
                s.reverse.isEmpty && mode != "reverse"
                    ? "-"
                    : "\((s.reverse[.inserted] ?? 0) + (s.reverse[.completing] ?? 0))/\(s.reverse[.done] ?? 0)/"
                        + "\(s.reverse[.conflict] ?? 0)",
                shadow.map { r in
                    (r.figures.matchRate.map(ShadowGate.percent) ?? "-") + " of \(r.figures.compared)"
                        + (r.figures.pending > 0 ? ", \(r.figures.pending) pending" : "")
                } ?? "-",
            ])
        }
        let json: JSONValue = [
            "queue": .string(config.queue), "database": .string(config.legacy.database),
            "variant": .string(store.schema.variant.rawValue),
            "objects": .string("\(health)"), "types": .array(rows),
        ]
        return View(
            json: json, table: table,
            header: "legacy: \(config.legacy.database) (\(store.schema.variant.rawValue)), objects: \(health)")
    }

    /// Sums over the types of one or several queues' models.
    public struct Totals: Sendable {
        public var queued = 0, inFlight = 0, forwarded = 0, mirrored = 0, quarantined = 0, collapsed = 0
        public var parityFindings = 0, executedByLegacy = 0
        public init() {}

        public mutating func add(_ model: JSONValue) {
            for t in model["types"]?.arrayValue ?? [] {
                func n(_ k: String) -> Int { Int(t[k]?.intValue ?? 0) }
                queued += n("queued")
                inFlight += n("in_flight")
                forwarded += n("forwarded")
                mirrored += n("mirrored")
                quarantined += n("quarantined")
                collapsed += n("collapsed")
                parityFindings += n("live_parity_findings")
                executedByLegacy += n("executed_by_legacy")
            }
        }

        public mutating func merge(_ o: Totals) {
            queued += o.queued
            inFlight += o.inFlight
            forwarded += o.forwarded
            mirrored += o.mirrored
            quarantined += o.quarantined
            collapsed += o.collapsed
            parityFindings += o.parityFindings
            executedByLegacy += o.executedByLegacy
        }

        public var json: JSONValue {
            [
                "queued": .int(Int64(queued)), "in_flight": .int(Int64(inFlight)),
                "forwarded": .int(Int64(forwarded)), "mirrored": .int(Int64(mirrored)),
                "quarantined": .int(Int64(quarantined)), "collapsed": .int(Int64(collapsed)),
                "live_parity_findings": .int(Int64(parityFindings)),
                "executed_by_legacy": .int(Int64(executedByLegacy)),
            ]
        }
    }

    /// `850ms`, `12.5s`, `14m`, `3.2h`.
    public static func ageText(_ seconds: Double?) -> String {
        guard let s = seconds else { return "-" }
        if s < 1 { return String(format: "%.0fms", s * 1000) }
        if s < 120 { return String(format: "%.1fs", s) }
        if s < 7200 { return String(format: "%.0fm", s / 60) }
        return String(format: "%.1fh", s / 3600)
    }
}

extension TypeMapping {
    /// How the canary splits this type's rows: collapse types by params, so
    /// identical rows land on one side; per-row types by id.
    public var canaryShare: Canary.ShareBy { dedupe == .collapse ? .params : .id }
}
