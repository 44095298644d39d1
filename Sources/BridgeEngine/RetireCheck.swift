import BridgeConfig
import Foundation
import LegacyQueue
import TaskManagerClient
import TaskManagerModel

/// Can SQLite go, per type and for the whole file: the conditions of
/// `taskbridge retire-check`, the gate of `cutover TYPE retired`, and the
/// checklist on the dashboard, decided here once.
public enum RetireCheck {
    public struct Check: Sendable {
        public var name: String
        public var ok: Bool
        public var evidence: String
    }
    public struct TypeResult: Sendable {
        public var type: String
        public var checks: [Check]
        public var passes: Bool { checks.allSatisfy(\.ok) }
    }

    public struct Result: Sendable {
        public var types: [TypeResult]
        public var scopeIsFile: Bool
        public var readErrors: [String]
        public var passes: Bool { types.allSatisfy(\.passes) && readErrors.isEmpty }

        public var json: JSONValue {
            .object([
                JSONMember("scope", .string(scopeIsFile ? "file" : "type")), JSONMember("can_retire", .bool(passes)),
                JSONMember(
                    "types",
                    .array(
                        types.map { t in
                            .object([
                                JSONMember("task_type", .string(t.type)), JSONMember("passes", .bool(t.passes)),
                                JSONMember(
                                    "checks",
                                    .array(
                                        t.checks.map {
                                            [
                                                "check": .string($0.name), "ok": .bool($0.ok),
                                                "evidence": .string($0.evidence),
                                            ]
                                        })),
                            ])
                        })),
                JSONMember("read_errors", .array(readErrors.map { .string($0) })),
            ])
        }

        public var text: String {
            var lines: [String] = []
            for t in types {
                lines.append("\(t.type): \(t.passes ? "can retire" : "not yet")")
                for c in t.checks { lines.append("  [\(c.ok ? "pass" : "FAIL")] \(c.name): \(c.evidence)") }
            }
            lines.append(
                scopeIsFile ? (passes ? "the whole file: SQLite can go" : "the whole file: SQLite cannot go yet") : "")
            return lines.joined(separator: "\n")
        }
    }

    /// A `--type` that bridge.conf does not map.
    public struct UnmappedType: Error, CustomStringConvertible {
        public var description: String
    }

    /// How the "verify clean" condition is decided: a full `verify` of the
    /// type (the CLI and the retirement gate), or the live parity sample of a
    /// running bridge (the dashboard, which redraws every 2 s).
    public enum VerifyDepth: Sendable { case full, liveSample }

    public static func check(
        config: BridgeConfiguration, store: LegacyQueueStore, client: TaskManagerClient?, only: String?,
        quiet: Duration, grace: Double, depth: VerifyDepth = .full, now: Date = Date()
    ) async throws -> Result {
        let report = try await store.statusReport()
        let states = try await store.modeStates()
        let modes = states.mapValues(\.mode)
        let quarantine = try await store.quarantineList()
        let present = try await store.distinctTypes()
        var typesToCheck = only.map { [$0] } ?? Array(Set(present + config.types.map(\.legacyType))).sorted()
        if let only, config.mapping(forLegacyType: only) == nil {
            throw UnmappedType(description: "\(config.file): task_type \"\(only)\" is not mapped")
        }
        typesToCheck = typesToCheck.filter { !$0.isEmpty }
        var results: [TypeResult] = []
        var readErrors: [String] = []
        let quietSeconds = Double(quiet.components.seconds)
        for t in typesToCheck {
            let s = report.first { $0.taskType == t } ?? TypeStatus(taskType: t)
            var checks: [Check] = []
            let mode = modes[t] ?? "off"
            let mapping = config.mapping(forLegacyType: t)
            if mapping != nil {
                // A canary below 100 % still leaves new rows to legacy workers.
                let percent = states[t]?.percent ?? 100
                let partial = mode == "forward" && percent < 100
                checks.append(
                    Check(
                        name: "mode is forward at 100 %, reverse or retired",
                        ok: (mode == "forward" && !partial) || mode == "retired" || mode == "reverse",
                        evidence: partial ? "mode forward at \(percent) %: raise it to 100 first" : "mode \(mode)"))
            } else {
                checks.append(
                    Check(
                        name: "type is bridged", ok: s.queued == 0 && s.legacyInFlight == 0,
                        evidence: "not mapped in bridge.conf; only acceptable when none of its rows wait or run"))
            }
            let open = s.queued + s.legacyInFlight + s.inFlight
            checks.append(
                Check(
                    name: "no queued or in-flight rows", ok: open == 0,
                    evidence: "queued \(s.queued), legacy in flight \(s.legacyInFlight), bridge in flight \(s.inFlight)"
                ))
            let q = quarantine.filter { $0.taskType == t }.count
            checks.append(Check(name: "quarantine empty", ok: q == 0, evidence: "\(q) row(s) quarantined"))
            if mapping != nil, depth == .liveSample || client == nil {
                checks.append(
                    Check(
                        name: "verify clean", ok: s.parityFindings == 0,
                        evidence:
                            "live parity sample: \(s.parityFindings) finding(s); `taskbridge retire-check` runs the "
                            + "full verify"))
            } else if let mapping, let client {
                var opts = Verifier.Options(types: [mapping])
                opts.grace = grace
                opts.keepFindings = false
                let r = try await Verifier(
                    store: store, client: client, bridgeID: config.bridge.id, options: opts
                ).run()
                readErrors += r.readErrors
                let c = r.counts[t] ?? [:]
                let parts = ParityClass.allCases.filter { (c[$0] ?? 0) > 0 }.map { "\($0.rawValue) \(c[$0]!)" }
                checks.append(
                    Check(
                        name: "verify clean", ok: r.parityHolds,
                        evidence: "\(r.checkedRows) row(s) checked"
                            + (parts.isEmpty ? "" : "; " + parts.joined(separator: ", "))))
            }
            let last = try await store.lastInsert(taskType: t)
            let idle = last.map { now.timeIntervalSince($0) }
            checks.append(
                Check(
                    name: "no legacy inserts for \(RetireCheck.describe(quiet))",
                    ok: idle.map { $0 >= quietSeconds } ?? true,
                    evidence: last.map {
                        "last insert \(LegacyTimestamp.format($0)) (\(StatusModel.ageText(idle)) ago)"
                    } ?? "no rows"))
            results.append(TypeResult(type: t, checks: checks))
        }
        return Result(types: results, scopeIsFile: only == nil, readErrors: readErrors)
    }

    public static func describe(_ d: Duration) -> String {
        let s = d.components.seconds
        if s % 86400 == 0 && s > 0 { return "\(s / 86400)d" }
        if s % 3600 == 0 && s > 0 { return "\(s / 3600)h" }
        if s % 60 == 0 && s > 0 { return "\(s / 60)m" }
        return "\(s)s"
    }
}
