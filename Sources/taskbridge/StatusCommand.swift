import ArgumentParser
import BridgeConfig
import BridgeEngine
import Foundation
import LegacyQueue
import TaskManagerModel

/// `taskbridge status`: per type, where the file and the database stand.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Show per-type mode and counters.")

    @OptionGroup var options: ConfigOption
    @Flag(help: "Machine-readable output.") var json = false
    @Flag(help: "Redraw every 2 seconds in place until interrupted (a terminal view).") var watch = false

    func run() async throws {
        let config = try options.load()
        let store = try CLI.openExisting(config)
        defer { try? store.close() }
        repeat {
            let view = try await StatusModel.build(config: config, store: store)
            if json {
                CLI.printJSON(view.json)
            } else {
                // Home and clear, then the table: redrawn in place, as `watch` does.
                if watch { FileHandle.standardOutput.write(Data("\u{1B}[H\u{1B}[2J".utf8)) }
                print(view.header)
                print(CLI.table(StatusModel.columns, view.table))
                if watch { print("\n\(LegacyTimestamp.format(Date()))  (every 2 s; Ctrl-C to stop)") }
            }
            if watch { try await Task.sleep(for: .seconds(2)) }
        } while watch
    }
}
