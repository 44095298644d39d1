import Foundation
import LegacyQueue
import TaskManagerModel

/// Compares the legacy and the TaskManager outcome of one shadowed row, field
/// by field. Pure: tested without sockets (`ShadowComparatorTests`).
///
/// - completed and completed: the results as JSON, key order and number
///   spelling ignored (`1` equals `1.0`), paths in `ignore` left out; no
///   difference is `matched`, any is `value` with the differing fields.
/// - failed and failed: agreement on failure, `matched` (the messages of two
///   implementations differ by nature).
/// - completed on one side, failed on the other: `legacy_failed_only` or
///   `taskmanager_failed_only`; any other terminal pair (a legacy row
///   `cancelled`): `outcome`.
///
/// A legacy `result_data` of NULL is PrismQ's `json.dumps(data) if data else
/// None`: it stands for an empty result, so it equals `null`, `{}` and `[]`.
/// A legacy queue without a result column compares outcomes only.
public struct ShadowComparator: Sendable {
    /// Path patterns left out: `fetched_at`, `items[*].view_count`, `meta.*`.
    public let ignore: [String]
    let patterns: [[String]]

    public init(ignore: [String]) {
        self.ignore = ignore
        self.patterns = ignore.map(Self.components)
    }

    public struct FieldDiff: Sendable, Equatable {
        /// The field, indices written `[*]` so that counts group by field.
        public var path: String
        /// The values as compact JSON text; nil where the field is absent.
        public var legacy: String?
        public var taskManager: String?
    }

    /// The comparison, or nil while either side is not terminal.
    public func compare(
        legacyStatus: String?, legacyResult: String?, hasLegacyResult: Bool, tmStatus: TaskStatus?,
        tmResult: JSONValue?
    ) -> ShadowLedger.Comparison? {
        guard let legacy = LegacyStatus(text: legacyStatus), legacy.isTerminal, let tm = tmStatus, tm.isTerminal
        else { return nil }
        let tmText = tmResult.map(PHPJSON.encode)
        func comparison(_ o: ShadowLedger.Outcome, _ fields: [FieldDiff] = []) -> ShadowLedger.Comparison {
            ShadowLedger.Comparison(
                outcome: o, legacyStatus: legacy.rawValue, legacyResult: legacyResult, tmStatus: tm.rawValue,
                tmResult: tmText, fieldsJSON: fields.isEmpty ? nil : Self.encode(fields))
        }
        switch (legacy, tm) {
        case (.completed, .completed):
            guard hasLegacyResult else { return comparison(.matched) }
            let fields = diff(Self.legacyValue(legacyResult), tmResult ?? .null)
            return comparison(fields.isEmpty ? .matched : .value, fields)
        case (.failed, .failed): return comparison(.matched)
        case (.failed, .completed): return comparison(.legacyFailedOnly)
        case (.completed, .failed): return comparison(.taskManagerFailedOnly)
        default: return comparison(.outcome)
        }
    }

    /// The differing fields of two results, in document order.
    public func diff(_ legacy: JSONValue, _ taskManager: JSONValue) -> [FieldDiff] {
        var out: [FieldDiff] = []
        walk(Self.emptyAsNull(legacy), Self.emptyAsNull(taskManager), path: [], into: &out)
        return out
    }

    func walk(_ a: JSONValue?, _ b: JSONValue?, path: [String], into out: inout [FieldDiff]) {
        if isIgnored(path) { return }
        switch (a, b) {
        case (nil, nil): return
        case (.object(let x)?, .object(let y)?):
            var keys = x.map(\.key)
            for m in y where !keys.contains(m.key) { keys.append(m.key) }
            for k in keys {
                walk(
                    x.first { $0.key == k }?.value, y.first { $0.key == k }?.value, path: path + [k], into: &out)
            }
        case (.array(let x)?, .array(let y)?):
            for i in 0..<max(x.count, y.count) {
                // Spelled out: `nil` alone would be JSONValue's nil literal, `.null`.
                let none = Optional<JSONValue>.none
                walk(i < x.count ? x[i] : none, i < y.count ? y[i] : none, path: path + ["[\(i)]"], into: &out)
            }
        case (let x?, let y?) where x.semanticallyEquals(y): return
        default:
            out.append(FieldDiff(path: Self.display(path), legacy: a.map(PHPJSON.encode), taskManager: b.map(PHPJSON.encode)))
        }
    }

    func isIgnored(_ path: [String]) -> Bool {
        patterns.contains { p in
            p.count == path.count
                && zip(p, path).allSatisfy { pat, c in pat == "*" || pat == c || (pat == "[*]" && c.hasPrefix("[")) }
        }
    }

    /// `items[*].view_count` -> ["items", "[*]", "view_count"].
    static func components(_ pattern: String) -> [String] {
        var out: [String] = []
        for part in pattern.split(separator: ".", omittingEmptySubsequences: true) {
            var s = Substring(part)
            if let open = s.firstIndex(of: "["), open > s.startIndex {
                out.append(String(s[..<open]))
                s = s[open...]
            }
            while let open = s.firstIndex(of: "["), let close = s[open...].firstIndex(of: "]") {
                let inner = s[s.index(after: open)..<close]
                out.append(inner.allSatisfy(\.isNumber) || inner == "*" ? "[\(inner == "*" ? "*" : inner)]" : String(inner))
                s = s[s.index(after: close)...]
            }
            if !s.isEmpty { out.append(String(s)) }
        }
        return out
    }

    /// Indices as `[*]`: a field's mismatches count together, whichever item.
    static func display(_ path: [String]) -> String {
        guard !path.isEmpty else { return "$" }
        var s = ""
        for c in path {
            if c.hasPrefix("[") { s += "[*]" } else { s += s.isEmpty ? c : "." + c }
        }
        return s
    }

    static func legacyValue(_ text: String?) -> JSONValue {
        guard let text else { return .null }
        if case .success(let (v, _)) = LegacyParameters.decode(Array(text.utf8)) { return v }
        return .string(text)
    }

    static func emptyAsNull(_ v: JSONValue) -> JSONValue {
        switch v {
        case .object(let m) where m.isEmpty: return .null
        case .array(let a) where a.isEmpty: return .null
        default: return v
        }
    }

    static func encode(_ fields: [FieldDiff]) -> String {
        PHPJSON.encode(
            .array(
                fields.map {
                    .object([
                        JSONMember("path", .string($0.path)), JSONMember("legacy", $0.legacy.map(JSONValue.string) ?? .null),
                        JSONMember("taskmanager", $0.taskManager.map(JSONValue.string) ?? .null),
                    ])
                }))
    }
}

/// The shadow gate of `cutover TYPE forward` from shadow: the last
/// `minCompared` comparisons matched at `minMatch` or better.
public struct ShadowGate: Sendable, Equatable {
    public var minCompared: Int
    public var minMatch: Double

    public init(minCompared: Int, minMatch: Double) {
        self.minCompared = minCompared
        self.minMatch = minMatch
    }

    public func passes(recentCompared: Int, recentMatched: Int) -> Bool {
        recentCompared >= minCompared && recentCompared > 0
            && Double(recentMatched) / Double(recentCompared) >= minMatch
    }

    /// The figures, said the same way by the CLI, the page and the report.
    public func describe(recentCompared: Int, recentMatched: Int) -> String {
        let rate = recentCompared == 0 ? "no comparisons" : Self.percent(Double(recentMatched) / Double(recentCompared))
        return "\(recentMatched) of the last \(recentCompared) comparisons matched (\(rate)); the gate needs "
            + "\(minCompared) comparisons matching at \(Self.percent(minMatch)) or better"
    }

    public static func percent(_ r: Double) -> String { String(format: "%.1f%%", r * 100) }
}
