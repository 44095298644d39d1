import ArgumentParser
import BridgeConfig
import Foundation
import LegacyQueue
import TaskManagerModel

/// `taskbridge status`: per type, where the file and the database stand.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Show per-type mode and counters.")

    @OptionGroup var options: ConfigOption
    @Flag(help: "Machine-readable output.") var json = false

    func run() async throws {
        let config = try options.load()
        let store = try CLI.openExisting(config)
        let report = try await store.statusReport()
        let health = try await store.objectsHealth()
        var rows: [JSONValue] = []
        var table: [[String]] = []
        for s in report {
            let fileMode = config.mapping(forLegacyType: s.taskType)?.mode.rawValue
            let mode = s.mode ?? "off"
            let differs = fileMode != nil && fileMode != mode
            rows.append([
                "task_type": .string(s.taskType), "mode": .string(mode),
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
            ])
            table.append([
                s.taskType, mode + (differs ? " (file: \(fileMode!))" : "") + (fileMode == nil ? " (unmapped)" : ""),
                "\(s.queued)", "\(s.inFlight)", "\(s.forwarded)", "\(s.mirrored)", "\(s.quarantined)", "\(s.collapsed)",
                CLI.ageText(s.oldestUnforwardedAge), "\(s.parityFindings)",
            ])
        }
        if json {
            CLI.printJSON([
                "database": .string(config.legacy.database), "variant": .string(store.schema.variant.rawValue),
                "objects": .string("\(health)"), "types": .array(rows),
            ])
        } else {
            print("legacy: \(config.legacy.database) (\(store.schema.variant.rawValue)), objects: \(health)")
            print(
                CLI.table(
                    [
                        "type", "mode", "queued", "in-flight", "forwarded", "mirrored", "quarantined", "collapsed",
                        "lag", "drift",
                    ], table))
        }
        try store.close()
    }
}
