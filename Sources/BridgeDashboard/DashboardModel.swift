import BridgeConfig
import BridgeEngine
import Foundation
import LegacyQueue
import TaskManagerModel

/// What the page shows, as one JSON document (`/dashboard.json`). Its
/// `status` member is `StatusModel.build`, the model `status --json` prints,
/// so the page and the CLI cannot disagree. Every string in it is data to
/// show as text: the page never interprets it as markup.
public actor DashboardModel {
    let engine: BridgeEngine
    let config: BridgeConfiguration
    let host: String
    /// Per-minute series, the retire-check checklist and the dry-run reasons
    /// scan more than the counters do; they are rebuilt at most this often.
    let slowInterval: Double
    var slow:
        (
            at: Double, series: [String: ThroughputSeries], retire: RetireCheck.Result?,
            reasons: [String: [(reason: String, count: Int)]]
        )?

    public init(engine: BridgeEngine, config: BridgeConfiguration, host: String, slowInterval: Double = 5) {
        self.engine = engine
        self.config = config
        self.host = host
        self.slowInterval = slowInterval
    }

    public static let stages = BridgeMode.stages.map(\.rawValue)
    /// Modes off the forward path: shown instead of the stages.
    public static let otherModes = BridgeMode.allCases.filter { !BridgeMode.stages.contains($0) }.map(\.rawValue)

    public func snapshot(now: Date = Date()) async throws -> JSONValue {
        let store = engine.store
        let status = try await StatusModel.build(config: config, store: store)
        let t = now.timeIntervalSince1970
        if slow == nil || t - slow!.at >= slowInterval {
            let series = try await store.perMinute(minutes: 60, now: now)
            let reasons = try await store.dryRunRejectReasons(top: 5)
            let retire = try? await RetireCheck.check(
                config: config, store: store, client: nil, only: nil, quiet: .seconds(86400), grace: 60,
                depth: .liveSample, now: now)
            slow = (t, series, retire, reasons)
        }
        let audit = try await store.audit(limit: 500)
        let quarantine = try await store.quarantinePage(taskType: nil, offset: 0, limit: 0)
        let file = try await store.fileInfo()
        let health = try await store.objectsHealth()
        var types: [JSONValue] = []
        for row in status.json["types"]?.arrayValue ?? [] {
            let type = row["task_type"]?.stringValue ?? ""
            let s = slow!.series[type]
            let retire = slow!.retire?.types.first { $0.type == type }
            types.append([
                "task_type": .string(type),
                "mapped": row["mapped"] ?? .bool(false),
                "stage": row["mode"] ?? .string("off"),
                "audit": .array(audit.filter { $0.taskType == type }.prefix(10).map(Self.auditJSON)),
                "series": s.map { s in
                    [
                        "start_epoch": .double(s.startEpoch),
                        "forwarded": .array(s.forwarded.map { .int(Int64($0)) }),
                        "mirrored": .array(s.mirrored.map { .int(Int64($0)) }),
                    ]
                } ?? .null,
                "dry_run_reasons": .array(
                    (slow!.reasons[type] ?? []).map { ["reason": .string($0.reason), "count": .int(Int64($0.count))] }),
                "retire_check": retire.map { r in
                    [
                        "passes": .bool(r.passes),
                        "checked_at": .string(LegacyTimestamp.format(Date(timeIntervalSince1970: slow!.at))),
                        "checks": .array(
                            r.checks.map {
                                ["check": .string($0.name), "ok": .bool($0.ok), "evidence": .string($0.evidence)]
                            }
                        ),
                    ]
                } ?? .null,
            ])
        }
        return [
            "generated_at": .string(LegacyTimestamp.format(now)),
            "bridge_id": .string(config.bridge.id), "host": .string(host),
            "stages": .array(Self.stages.map { .string($0) }),
            "other_modes": .array(Self.otherModes.map { .string($0) }),
            "percent_modes": .array(BridgeMode.allCases.filter(\.takesPercent).map { .string($0.rawValue) }),
            "status": status.json,
            "types": .array(types),
            "quarantine_total": .int(Int64(quarantine.total)),
            "api": await engine.apiSide(now: now),
            "legacy": [
                "file": .string(file.path), "variant": .string(store.schema.variant.rawValue),
                "journal_mode": .string(file.journalMode),
                "file_bytes": file.fileBytes.map { .int($0) } ?? .null,
                "wal_bytes": file.walBytes.map { .int($0) } ?? .null,
                "objects": .string("\(health)"), "objects_intact": .bool(health == .intact),
                "write_lock_wait_seconds": .double((store.lockWatch.currentWait * 1000).rounded() / 1000),
            ],
        ]
    }

    static func auditJSON(_ a: AuditEntry) -> JSONValue {
        [
            "at": .string(a.at), "action": .string(a.action), "from": a.from.map { .string($0) } ?? .null,
            "to": .string(a.to), "percent": a.percent.map { .int(Int64($0)) } ?? .null,
            "reason": a.reason.map { .string($0) } ?? .null,
            "actor": a.actor.map { .string($0) } ?? .null, "host": a.host.map { .string($0) } ?? .null,
        ]
    }

    /// One page of the quarantine for the table under the types.
    public func quarantine(taskType: String?, offset: Int, limit: Int) async throws -> JSONValue {
        let page = try await engine.store.quarantinePage(taskType: taskType, offset: offset, limit: limit)
        return [
            "total": .int(Int64(page.total)), "offset": .int(Int64(offset)), "limit": .int(Int64(limit)),
            "entries": .array(
                page.entries.map {
                    [
                        "id": .int($0.legacyID), "task_type": .string($0.taskType), "reason": .string($0.reason),
                        "detail": .string($0.detail), "attempts": .int($0.attempts), "first_at": .string($0.firstAt),
                        "last_at": .string($0.lastAt),
                    ]
                }),
        ]
    }
}
