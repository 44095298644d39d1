import BridgeConfig
import Foundation
import LegacyQueue
import TaskManagerModel

/// The shadow report: `shadow report` (text and `--json`), the `shadow`
/// member of each type in `status --json` and `/status.json`, and the page,
/// built here so that they say the same figures.
public enum ShadowReport {
    public struct TypeReport: Sendable {
        public var figures: ShadowFigures
        public var gate: ShadowGate
        public var inShadow: Bool
        public var percent: Int
        public var passes: Bool { gate.passes(recentCompared: figures.recentCompared, recentMatched: figures.recentMatched) }
    }

    /// Every type in shadow now or with shadow records (only `type` when given).
    public static func build(
        config: BridgeConfiguration, store: LegacyQueueStore, type: String? = nil, examples: Int = 3,
        perMinuteSince: Double? = nil
    ) async throws -> [TypeReport] {
        let modes = try await store.modeStates()
        let window = Dictionary(config.types.map { ($0.legacyType, $0.shadowMinCompared) }, uniquingKeysWith: { a, _ in a })
        var figures = try await store.shadowFigures(
            types: type.map { [$0] }, window: window, examples: examples, since: perMinuteSince)
        for (t, m) in modes where m.mode == BridgeMode.shadow.rawValue && (type == nil || type == t) {
            if !figures.contains(where: { $0.taskType == t }) { figures.append(ShadowFigures(taskType: t)) }
        }
        return figures.sorted { $0.taskType < $1.taskType }.map { f in
            let mapping = config.mapping(forLegacyType: f.taskType)
            let mode = modes[f.taskType]
            return TypeReport(
                figures: f,
                gate: ShadowGate(minCompared: mapping?.shadowMinCompared ?? 100, minMatch: mapping?.shadowMinMatch ?? 0.99),
                inShadow: mode?.mode == BridgeMode.shadow.rawValue, percent: mode?.percent ?? 100)
        }
    }

    /// True when every type in shadow meets its gate (the report's exit code).
    public static func allPass(_ reports: [TypeReport]) -> Bool {
        reports.filter(\.inShadow).allSatisfy(\.passes)
    }

    public static func json(_ r: TypeReport) -> JSONValue {
        let f = r.figures
        return [
            "in_shadow": .bool(r.inShadow), "percent": .int(Int64(r.inShadow ? r.percent : 0)),
            "compared": .int(Int64(f.compared)), "matched": .int(Int64(f.matched)),
            "mismatched": .int(Int64(f.mismatched)),
            "mismatched_value": .int(Int64(f.byOutcome[.value] ?? 0)),
            "mismatched_outcome": .int(Int64(f.byOutcome[.outcome] ?? 0)),
            "legacy_failed_only": .int(Int64(f.byOutcome[.legacyFailedOnly] ?? 0)),
            "taskmanager_failed_only": .int(Int64(f.byOutcome[.taskManagerFailedOnly] ?? 0)),
            "pending": .int(Int64(f.pending)), "expired": .int(Int64(f.expired)), "refused": .int(Int64(f.refused)),
            "match_rate": f.matchRate.map { .double(($0 * 10_000).rounded() / 10_000) } ?? .null,
            "gate": [
                "passes": .bool(r.passes), "min_compared": .int(Int64(r.gate.minCompared)),
                "min_match": .double(r.gate.minMatch), "recent_compared": .int(Int64(f.recentCompared)),
                "recent_matched": .int(Int64(f.recentMatched)),
            ],
            "fields": .array(
                f.fields.map { field in
                    [
                        "path": .string(field.path), "mismatched": .int(Int64(field.mismatched)),
                        "examples": .array(
                            field.examples.map {
                                [
                                    "legacy_id": .int($0.legacyID), "legacy": $0.legacy.map { .string($0) } ?? .null,
                                    "taskmanager": $0.taskManager.map { .string($0) } ?? .null,
                                ]
                            }),
                    ]
                }),
            "per_minute": .array(
                f.perMinute.map {
                    [
                        "minute": .int($0.minute * 60), "matched": .int(Int64($0.matched)),
                        "mismatched": .int(Int64($0.mismatched)),
                    ]
                }),
        ]
    }

    /// `{"types": {legacy type: report}}`.
    public static func json(_ reports: [TypeReport]) -> JSONValue {
        .object([JSONMember("types", .object(reports.map { JSONMember($0.figures.taskType, json($0)) }))])
    }

    public static func text(_ reports: [TypeReport]) -> String {
        guard !reports.isEmpty else { return "no type is in shadow and no shadow comparisons are recorded" }
        var out: [String] = []
        for r in reports {
            let f = r.figures
            let mode = r.inShadow ? ModeState(mode: "shadow", percent: r.percent).label : "not in shadow now"
            out.append("\(f.taskType) (\(mode))")
            out.append(
                "  compared \(f.compared): matched \(f.matched), mismatched \(f.mismatched) (value \(f.byOutcome[.value] ?? 0), "
                    + "legacy failed only \(f.byOutcome[.legacyFailedOnly] ?? 0), TaskManager failed only "
                    + "\(f.byOutcome[.taskManagerFailedOnly] ?? 0), other outcome \(f.byOutcome[.outcome] ?? 0))")
            out.append(
                "  pending \(f.pending), expired \(f.expired)" + (f.refused > 0 ? ", refused \(f.refused)" : "")
                    + ", match rate " + (f.matchRate.map(ShadowGate.percent) ?? "-"))
            out.append(
                "  gate: " + (r.passes ? "passes" : "not met") + " - "
                    + r.gate.describe(recentCompared: f.recentCompared, recentMatched: f.recentMatched))
            if !f.fields.isEmpty { out.append("  differing fields:") }
            for field in f.fields {
                out.append("    \(field.path): \(field.mismatched)")
                for e in field.examples {
                    out.append(
                        "      row \(e.legacyID): legacy \(LogSafe.escape(e.legacy ?? "(absent)")) | TaskManager "
                            + LogSafe.escape(e.taskManager ?? "(absent)"))
                }
            }
        }
        return out.joined(separator: "\n")
    }
}
