import ArgumentParser
import BridgeConfig
import BridgeEngine
import Foundation
import LegacyQueue
import TaskManagerModel

/// `taskbridge shadow report`: what the shadow stage measured, per type.
struct ShadowCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shadow", abstract: "The shadow stage: compare legacy and TaskManager results.",
        subcommands: [ShadowReportCommand.self])
}

struct ShadowReportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Per type in shadow: comparisons, match rate, differing fields with examples, the gate.",
        discussion: """
            Exit codes: 0 every type in shadow meets its gate (shadow_min_compared, shadow_min_match), 1 one does \
            not, 2 usage or configuration error, 3 the file could not be read.
            """)

    @OptionGroup var options: ConfigOption
    @Option(help: "Only this legacy task_type.") var type: String?
    @Flag(help: "Machine-readable output: {\"types\": {TYPE: {...}}}.") var json = false
    @Option(help: "Examples per differing field.") var examples = 3

    func run() async throws {
        guard examples >= 0 else { throw CLIError.config("--examples must be 0 or more") }
        let configs = try options.loadAll()
        var all: [ShadowReport.TypeReport] = []
        var members: [JSONMember] = []
        for config in configs {
            let store = try CLI.openExisting(config)
            defer { try? store.close() }
            let reports = try await ShadowReport.build(config: config, store: store, type: type, examples: examples)
            all += reports
            if json {
                members.append(JSONMember(config.queue, ShadowReport.json(reports)))
            } else {
                if configs.count > 1 { print("queue \(config.queue)") }
                print(ShadowReport.text(reports))
            }
        }
        if json { CLI.printJSON(members.count == 1 ? members[0].value : ["queues": .object(members)]) }
        if !ShadowReport.allPass(all) {
            throw CLIError(code: .problems, message: "a type in shadow does not meet its gate yet")
        }
    }
}
