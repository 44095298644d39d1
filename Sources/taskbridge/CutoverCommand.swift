import ArgumentParser
import BridgeConfig
import BridgeEngine
import Foundation
import LegacyQueue

/// `taskbridge cutover TYPE MODE --reason TEXT`: change a type's mode in the
/// database; a running bridge applies it within one poll interval and the
/// insert trigger at the very next insert.
struct CutoverCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cutover", abstract: "Change the mode of a legacy task type (audited).")

    @OptionGroup var options: ConfigOption
    @Argument(help: "Legacy task_type.") var type: String
    @Argument(help: ArgumentHelp(BridgeMode.allCases.map(\.rawValue).joined(separator: " | "))) var mode: String
    @Option(
        help: """
            forward: the canary share of new rows the bridge takes; shadow: the share of rows that get a shadow \
            copy; 1 to 100 (default 100).
            """)
    var percent: Int?
    @Option(help: "Why (recorded in the audit trail).") var reason: String?
    @Flag(
        help: """
            Allow an unmapped type, forward from shadow without passing the shadow gate, or retire without passing \
            retire-check (needs --reason; audited as cutover-forced).
            """)
    var force = false
    @Option(name: .customLong("quiet-period"), help: "Quiet period the retirement gate requires (as retire-check).")
    var quietPeriod: String = "24h"

    func run() async throws {
        let config = try options.load()
        guard let target = BridgeMode(rawValue: mode) else {
            throw CLIError.config(
                "mode must be one of \(BridgeMode.allCases.map(\.rawValue).joined(separator: ", ")) (got \(mode))")
        }
        guard let quiet = Duration.parse(quietPeriod) else {
            throw CLIError.config("--quiet-period must look like 90s, 30m, 24h or 7d")
        }
        let store = try CLI.openExisting(config)
        defer { try? store.close() }
        let request = Cutover.Request(
            taskType: type, mode: target, percent: percent, reason: reason, force: force,
            actor: ProcessInfo.processInfo.environment["USER"] ?? "unknown", host: CLI.hostName)
        do {
            let outcome = try await Cutover.perform(request, config: config, store: store) {
                let session = try await APISession.open(config)
                defer { Task { await session.close() } }
                return try await RetireCheck.check(
                    config: config, store: session.store, client: session.client, only: type, quiet: quiet, grace: 60)
            }
            print("\(type): \(outcome.from) -> \(outcome.to)" + (reason.map { " (\($0))" } ?? ""))
            if let note = outcome.note { print(note) }
        } catch let refusal as Cutover.Refusal {
            if let report = refusal.gateReport { print(report) }
            switch refusal.kind {
            case .usage: throw CLIError.config(refusal.description)
            case .conflict:
                throw CLIError(
                    code: refusal.gateReport == nil ? .usage : .problems,
                    message: refusal.gateReport == nil ? "\(config.file): \(refusal.description)" : refusal.description)
            }
        }
    }
}
