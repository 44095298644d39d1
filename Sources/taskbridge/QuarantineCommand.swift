import ArgumentParser
import Foundation
import TaskManagerModel

/// `taskbridge quarantine list|retry`.
struct QuarantineCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quarantine", abstract: "List or retry rows the bridge could not forward.",
        subcommands: [List.self, Retry.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list", abstract: "List quarantined rows with their reason.")
        @OptionGroup var options: ConfigOption
        @Option(help: "Only this legacy task_type.") var type: String?
        @Flag(help: "Machine-readable output.") var json = false

        func run() async throws {
            let config = try options.load()
            let store = try CLI.openExisting(config)
            let entries = try await store.quarantineList(taskType: type)
            if json {
                CLI.printJSON(
                    .array(
                        entries.map {
                            [
                                "id": .int($0.legacyID), "task_type": .string($0.taskType),
                                "reason": .string($0.reason), "detail": .string($0.detail),
                                "attempts": .int($0.attempts), "first_at": .string($0.firstAt),
                                "last_at": .string($0.lastAt),
                            ]
                        }))
            } else if entries.isEmpty {
                print("quarantine is empty")
            } else {
                print(
                    CLI.table(
                        ["id", "type", "reason", "attempts", "last", "detail"],
                        entries.map {
                            [
                                "\($0.legacyID)", $0.taskType, $0.reason, "\($0.attempts)", $0.lastAt,
                                String($0.detail.prefix(100)),
                            ]
                        }))
            }
            try store.close()
        }
    }

    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "retry",
            abstract: "Release quarantined rows so the bridge tries them again (fix the cause first).")
        @OptionGroup var options: ConfigOption
        @Argument(help: "Legacy row ids.") var ids: [Int64] = []
        @Option(help: "All quarantined rows of this task_type.") var type: String?
        @Flag(help: "Every quarantined row.") var all = false
        @Option(help: "Why (recorded in the audit trail).") var reason: String?

        func validate() throws {
            let chosen = (ids.isEmpty ? 0 : 1) + (type == nil ? 0 : 1) + (all ? 1 : 0)
            guard chosen == 1 else { throw ValidationError("give row ids, or --type T, or --all (exactly one)") }
        }

        func run() async throws {
            let config = try options.load()
            let store = try CLI.openExisting(config)
            let released = try await store.quarantineRetry(
                ids: ids.isEmpty ? nil : ids, taskType: type,
                actor: ProcessInfo.processInfo.environment["USER"] ?? "unknown",
                host: CLI.hostName, reason: reason)
            print(
                "released \(released.count) row(s) for another attempt"
                    + (released.isEmpty ? "" : ": \(released.map(String.init).joined(separator: " "))"))
            try store.close()
            if !ids.isEmpty && released.count < ids.count {
                throw CLIError(
                    code: .problems, message: "\(ids.count - released.count) of the given ids were not in quarantine")
            }
        }
    }
}
