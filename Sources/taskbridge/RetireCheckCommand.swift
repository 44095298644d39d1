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
        let configs = try options.loadAll()
        var members: [JSONMember] = []
        var readErrors: [String] = []
        var failing: [String] = []
        for config in configs {
            let session = try await APISession.open(config)
            let result: RetireCheck.Result
            do {
                result = try await RetireCheck.check(
                    config: config, store: session.store, client: session.client, only: type, quiet: quiet,
                    grace: grace)
            } catch let e as RetireCheck.UnmappedType {
                await session.close()
                throw CLIError.config(e.description)
            } catch {
                await session.close()
                throw error
            }
            await session.close()
            if configs.count == 1 {
                json ? CLI.printJSON(result.json) : print(result.text)
            } else {
                members.append(JSONMember(config.queue, result.json))
                if !json { print("queue \(config.queue) (\(config.legacy.database))\n\(result.text)\n") }
            }
            readErrors += result.readErrors
            if !result.passes { failing.append(config.queue) }
        }
        if configs.count > 1 && json {
            CLI.printJSON(["passes": .bool(failing.isEmpty && readErrors.isEmpty), "queues": .object(members)])
        }
        if !readErrors.isEmpty {
            throw CLIError(code: .runtime, message: readErrors.joined(separator: "; "))
        }
        if !failing.isEmpty {
            let which = configs.count > 1 ? " (queues: \(failing.joined(separator: ", ")))" : ""
            throw CLIError(
                code: .problems,
                message: (type.map { "\($0) cannot be retired yet" } ?? "SQLite cannot be removed yet") + which)
        }
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

    static func describe(_ d: Duration) -> String { RetireCheck.describe(d) }
}
