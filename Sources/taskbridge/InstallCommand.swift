import ArgumentParser
import BridgeEngine
import Foundation

/// `taskbridge install`: add the `_taskbridge_*` objects (run does this too).
struct InstallCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "install",
        abstract: "Create or repair the _taskbridge_* objects in the legacy database (one transaction).")

    @OptionGroup var options: ConfigOption

    func run() async throws {
        let config = try options.load()
        let opened = try CLI.openLegacy(config)
        if opened.created { print("created an empty variant A task_queue at \(config.legacy.database)") }
        let store = opened.store
        let before = try await store.objectsHealth()
        try await store.install()
        for m in config.types {
            _ = try await store.seedMode(
                taskType: m.legacyType, mode: m.mode.rawValue, shareBy: m.canaryShare, host: CLI.hostName)
        }
        print(
            """
            installed _taskbridge_* objects in \(config.legacy.database) (\(store.schema.variant.rawValue) schema; \
            was: \(before))
            """
        )
        try store.close()
    }
}
