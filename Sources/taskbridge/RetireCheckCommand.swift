import ArgumentParser
import BridgeConfig
import BridgeEngine
import Foundation
import LegacyQueue
import TaskManagerModel

/// `taskbridge retire-check`: can SQLite go, per type and for the whole file?
struct RetireCheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retire-check", abstract: "Check, per type and for the whole file, whether SQLite can be removed.",
        discussion:
            """
            Exit codes: 0 SQLite can go, 1 a condition is unmet, 2 usage or configuration error, 3 a side could not be \
            read.
            """
    )

    @OptionGroup var options: ConfigOption
    @Option(help: "Only this legacy task_type.") var type: String?
    @Option(name: .customLong("quiet-period"), help: "No legacy inserts for this long (e.g. 30m, 24h, 7d).")
    var quietPeriod: String = "24h"
    @Option(help: "Grace window for verify, in seconds.") var grace: Double = 60
    @Flag(help: "Machine-readable output.") var json = false

    func run() async throws {
        guard let quiet = Duration.parse(quietPeriod) else {
            throw CLIError.config("--quiet-period must look like 90s, 30m, 24h or 7d")
        }
        let config = try options.load()
        let session = try await APISession.open(config)
        defer { Task { await session.close() } }
        let result = try await Self.check(config: config, session: session, only: type, quiet: quiet, grace: grace)
        if json {
            CLI.printJSON(result.json)
        } else {
            print(result.text)
        }
        if !result.readErrors.isEmpty {
            throw CLIError(code: .runtime, message: result.readErrors.joined(separator: "; "))
        }
        if !result.passes {
            throw CLIError(
                code: .problems, message: type.map { "\($0) cannot be retired yet" } ?? "SQLite cannot be removed yet")
        }
    }

    struct Check { var name: String; var ok: Bool; var evidence: String }
    struct TypeResult { var type: String; var checks: [Check]; var passes: Bool { checks.allSatisfy(\.ok) } }

    struct Result {
        var types: [TypeResult]
        var scopeIsFile: Bool
        var readErrors: [String]
        var passes: Bool { types.allSatisfy(\.passes) && readErrors.isEmpty }

        var json: JSONValue {
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

        var text: String {
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

    static func check(
        config: BridgeConfiguration, session: APISession, only: String?, quiet: Duration, grace: Double
    ) async throws -> Result {
        let store = session.store
        let report = try await store.statusReport()
        let modes = try await store.modes()
        let quarantine = try await store.quarantineList()
        let present = try await store.distinctTypes()
        var typesToCheck = only.map { [$0] } ?? Array(Set(present + config.types.map(\.legacyType))).sorted()
        if let only, config.mapping(forLegacyType: only) == nil {
            throw CLIError.config("\(config.file): task_type \"\(only)\" is not mapped")
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
                checks.append(
                    Check(
                        name: "mode is forward or retired", ok: mode == "forward" || mode == "retired",
                        evidence: "mode \(mode)"))
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
            if let mapping {
                var opts = Verifier.Options(types: [mapping])
                opts.grace = grace
                opts.keepFindings = false
                let r = try await Verifier(
                    store: store, client: session.client, bridgeID: config.bridge.id, options: opts
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
            let idle = last.map { Date().timeIntervalSince($0) }
            checks.append(
                Check(
                    name: "no legacy inserts for \(Duration.describe(quiet))",
                    ok: idle.map { $0 >= quietSeconds } ?? true,
                    evidence: last.map { "last insert \(LegacyTimestamp.format($0)) (\(CLI.ageText(idle)) ago)" }
                        ?? "no rows"))
            results.append(TypeResult(type: t, checks: checks))
        }
        return Result(types: results, scopeIsFile: only == nil, readErrors: readErrors)
    }
}

extension Duration {
    /// `90`, `90s`, `30m`, `24h`, `7d`.
    static func parse(_ text: String) -> Duration? {
        let t = text.trimmingCharacters(in: .whitespaces).lowercased()
        let units: [Character: Int64] = ["s": 1, "m": 60, "h": 3600, "d": 86400]
        if let last = t.last, let u = units[last], let n = Int64(t.dropLast()), n >= 0 { return .seconds(n * u) }
        if let n = Int64(t), n >= 0 { return .seconds(n) }
        return nil
    }

    static func describe(_ d: Duration) -> String {
        let s = d.components.seconds
        if s % 86400 == 0 && s > 0 { return "\(s / 86400)d" }
        if s % 3600 == 0 && s > 0 { return "\(s / 3600)h" }
        if s % 60 == 0 && s > 0 { return "\(s / 60)m" }
        return "\(s)s"
    }
}
