import ArgumentParser
import Foundation
import LegacyQueue

/// `taskbridge uninstall`: remove every `_taskbridge_*` object, leaving the
/// legacy table exactly as producers know it.
struct UninstallCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "uninstall",
        abstract: "Remove every _taskbridge_* object from the legacy database (one transaction).")

    @OptionGroup var options: ConfigOption

    @Flag(help: "Remove even while rows are still held by the bridge (they stay claimed in task_queue).")
    var force = false

    func run() async throws {
        let config = try options.load()
        let store = try CLI.openExisting(config)
        let lock: BridgeLock
        do { lock = try BridgeLock(databasePath: config.legacy.database) } catch { throw CLIError.runtime("\(error)") }
        defer { _ = lock }
        let held = try await store.statusReport().reduce(0) { $0 + $1.inFlight + $1.quarantined }
        if held > 0 && !force {
            throw CLIError(
                code: .problems,
                message:
                    """
                    \(held) row(s) are still in flight or quarantined through the bridge; finish or retire them first \
                    (or pass --force)
                    """
            )
        }
        try await store.uninstall()
        print("removed all _taskbridge_* objects from \(config.legacy.database)")
        try store.close()
    }
}
