import BridgeConfig
import Foundation
import LegacyQueue
import TaskManagerModel

/// Every way SQLite and TaskManager can disagree about a bridged row
/// (PRODUCT.md section 7). Pure: tested without sockets.
public enum ParityClass: String, Sendable, CaseIterable, Codable {
    /// A due row of a forward type that is not a TaskManager task after the
    /// grace window (or whose task vanished).
    case missingInTaskManager = "missing_in_taskmanager"
    /// A ledger entry whose legacy row is gone.
    case missingInSQLite = "missing_in_sqlite"
    case statusDiverged = "status_diverged"
    case payloadDiverged = "payload_diverged"
    case quarantined
    /// Informational: the row shares its task with other identical rows.
    case collapsed
    /// Informational: a task of a bridged type that no legacy row produced.
    case apiNative = "api_native"
    /// A row the bridge should have taken at insert (its type was taking
    /// rows when it was created) that a legacy worker executed: it arrived
    /// while the insert trigger was missing (a recreated table).
    case executedByLegacy = "executed_by_legacy"

    /// Findings that break parity (the others are reported, not failed).
    public var breaksParity: Bool { self != .collapsed && self != .apiNative }
}

public struct ParityFinding: Sendable, Equatable {
    public var kind: ParityClass
    public var taskType: String
    public var legacyID: Int64?
    public var taskID: Int64?
    public var detail: String

    public var json: JSONValue {
        .object([
            JSONMember("class", .string(kind.rawValue)), JSONMember("task_type", .string(taskType)),
            JSONMember("legacy_id", legacyID.map { .int($0) } ?? .null),
            JSONMember("task_id", taskID.map { .int($0) } ?? .null),
            JSONMember("detail", .string(detail)),
        ])
    }
}

public enum ParityClassifier {
    /// What a legacy row should show for a TaskManager status, as a set of
    /// acceptable legacy statuses.
    static func acceptable(for tm: String) -> Set<LegacyStatus> {
        switch tm {
        case "pending": return [.claimed]
        case "claimed": return [.claimed, .running]
        case "completed": return [.completed]
        case "failed": return [.failed]
        default: return []
        }
    }

    /// Compares one forwarded row with its task. `settled` is false while
    /// the row is inside the grace window (a status still being mirrored is
    /// not a divergence yet).
    public static func compare(
        row: LegacyRow, mapping: TypeMapping?, ledger: LedgerEntry, task: TaskInfo, settled: Bool
    ) -> [ParityFinding] {
        var out: [ParityFinding] = []
        let type = row.taskType
        if ledger.collapsed {
            out.append(
                ParityFinding(
                    kind: .collapsed, taskType: type, legacyID: row.id, taskID: task.id,
                    detail: "shares task \(task.id)"))
        }
        let legacy = LegacyStatus(text: row.status)
        if settled || (legacy?.isTerminal ?? false) {
            let ok = legacy.map { acceptable(for: task.rawStatus).contains($0) } ?? false
            if !ok {
                out.append(
                    ParityFinding(
                        kind: .statusDiverged, taskType: type, legacyID: row.id, taskID: task.id,
                        detail: "legacy \(row.status ?? "NULL") vs TaskManager \(task.rawStatus)"))
            }
        }
        if let expected = expectedParams(row: row, mapping: mapping, ledger: ledger), let actual = task.params,
            !PHPNormalized(expected).semanticallyEquals(PHPNormalized(actual))
        {
            out.append(
                ParityFinding(
                    kind: .payloadDiverged, taskType: type, legacyID: row.id, taskID: task.id,
                    detail:
                        """
                        legacy params \(String(PHPJSON.encode(expected).prefix(120))) vs TaskManager \
                        \(String(PHPJSON.encode(actual).prefix(120)))
                        """
                ))
        }
        return out
    }

    /// The params the row stands for now: its parameters, plus the per-row
    /// marker when the type uses one.
    static func expectedParams(row: LegacyRow, mapping: TypeMapping?, ledger: LedgerEntry) -> JSONValue? {
        guard case .success(let (v, _)) = LegacyParameters.decode(row.parameters, maxBodyBytes: .max) else {
            return .string("<unreadable parameters>")
        }
        guard let mapping, mapping.dedupe == .perRow, case .object(var m) = v else { return v }
        if !m.contains(where: { $0.key == mapping.marker }) { m.append(JSONMember(mapping.marker, .int(row.id))) }
        // The origin is the generation's, recorded with the intent (entries of
        // earlier versions have none and their tasks none either).
        if !m.contains(where: { $0.key == mapping.originMarker }), let sent = ledger.paramsJSON,
            case .object(let recorded)? = try? JSONParser.parse(sent),
            let origin = recorded.first(where: { $0.key == mapping.originMarker })
        {
            m.append(origin)
        }
        return .object(m)
    }

    /// PHP stores `{}` as `[]`; compare what the server could have stored.
    static func PHPNormalized(_ v: JSONValue) -> JSONValue {
        (try? JSONParser.parse(PHPJSON.encode(v))) ?? v
    }
}
