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
    @Argument(help: "off | dry-run | forward | retired | reverse") var mode: String
    @Option(help: "forward only: the canary share of new rows the bridge takes, 1 to 100 (default 100).")
    var percent: Int?
    @Option(help: "Why (recorded in the audit trail).") var reason: String?
    @Flag(help: "Allow an unmapped type, or retire without passing retire-check (needs --reason).") var force = false
    @Option(name: .customLong("quiet-period"), help: "Quiet period the retirement gate requires (as retire-check).")
    var quietPeriod: String = "24h"

    func run() async throws {
        let config = try options.load()
        guard let target = BridgeMode(rawValue: mode) else {
            throw CLIError.config("mode must be one of off, dry-run, forward, retired, reverse (got \(mode))")
        }
        if let percent {
            guard target == .forward else { throw CLIError.config("--percent applies to forward only") }
            guard (1...100).contains(percent) else {
                throw CLIError.config("--percent must be 1 to 100 (0 is `cutover \(type) off`)")
            }
        }
        if config.mapping(forLegacyType: type) == nil && target != .off && !force {
            throw CLIError.config("\(config.file): task_type \"\(type)\" has no [types.\(type)] mapping; add one first")
        }
        if target == .retired {
            if force {
                guard let reason, !reason.isEmpty else {
                    throw CLIError.config("--force needs --reason to retire without the gate")
                }
            } else {
                let session = try await APISession.open(config)
                guard let quiet = Duration.parse(quietPeriod) else {
                    throw CLIError.config("--quiet-period must look like 90s, 30m, 24h or 7d")
                }
                let result = try await RetireCheck.check(
                    config: config, store: session.store, client: session.client, only: type, quiet: quiet, grace: 60)
                await session.close()
                guard result.passes else {
                    print(result.text)
                    throw CLIError(
                        code: .problems,
                        message:
                            "\(type) does not pass retire-check; fix the failing checks or use --force --reason TEXT")
                }
            }
        }
        let store = try CLI.openExisting(config)
        if case .notInstalled = try await store.objectsHealth() { try await store.install() }
        let share = percent ?? 100
        let old = try await store.setMode(
            taskType: type, mode: target.rawValue, percent: share,
            shareBy: config.mapping(forLegacyType: type)?.canaryShare, reason: reason, host: CLI.hostName,
            actor: ProcessInfo.processInfo.environment["USER"] ?? "unknown")
        let now = ModeState(mode: target.rawValue, percent: share).label
        print("\(type): \(old?.label ?? "off") -> \(now)" + (reason.map { " (\($0))" } ?? ""))
        if old?.mode == BridgeMode.forward.rawValue && (target == .off || share < (old?.percent ?? 100)) {
            print(
                "rows already forwarded stay with TaskManager and keep being mirrored; "
                    + (target == .off ? "new rows go to legacy workers" : "new rows outside the share stay queued"))
        }
        try store.close()
    }
}
