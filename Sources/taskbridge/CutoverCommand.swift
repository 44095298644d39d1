import ArgumentParser
import BridgeConfig
import Foundation

/// `taskbridge cutover TYPE MODE --reason TEXT`: change a type's mode in the
/// database; a running bridge applies it within one poll interval and the
/// insert trigger at the very next insert.
struct CutoverCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cutover", abstract: "Change the mode of a legacy task type (audited).")

    @OptionGroup var options: ConfigOption
    @Argument(help: "Legacy task_type.") var type: String
    @Argument(help: "off | dry-run | forward | retired") var mode: String
    @Option(help: "Why (recorded in the audit trail).") var reason: String?
    @Flag(help: "Allow a type that bridge.conf does not map (it can only be counted).") var force = false

    func run() async throws {
        let config = try options.load()
        guard let target = BridgeMode(rawValue: mode) else {
            throw CLIError.config("mode must be one of off, dry-run, forward, retired (got \(mode))")
        }
        if config.mapping(forLegacyType: type) == nil && target != .off && !force {
            throw CLIError.config("\(config.file): task_type \"\(type)\" has no [types.\(type)] mapping; add one first")
        }
        var c = config
        c.legacy.createIfMissing = false
        let store = try CLI.openLegacy(c).store
        if case .notInstalled = try await store.objectsHealth() { try await store.install() }
        let old = try await store.setMode(taskType: type, mode: target.rawValue, reason: reason, host: CLI.hostName,
                                          actor: ProcessInfo.processInfo.environment["USER"] ?? "unknown")
        print("\(type): \(old ?? "off") -> \(target.rawValue)" + (reason.map { " (\($0))" } ?? ""))
        if old == BridgeMode.forward.rawValue && target == .off {
            print("rows already forwarded stay with TaskManager and keep being mirrored; new rows go to legacy workers")
        }
        try store.close()
    }
}
