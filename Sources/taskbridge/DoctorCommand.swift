import ArgumentParser
import BridgeConfig
import Foundation
import GRDB
import LegacyQueue
import TaskManagerClient
import TaskManagerModel

/// `taskbridge doctor`: every precondition of a healthy bridge, checked.
struct DoctorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor", abstract: "Check the legacy database, the objects and the TaskManager API.")

    @OptionGroup var options: ConfigOption
    @Flag(help: "Machine-readable output.") var json = false

    struct Check {
        var name: String
        var ok: Bool
        var detail: String
    }

    func run() async throws {
        let config = try options.load()
        var checks: [Check] = []
        var c = config
        c.legacy.createIfMissing = false
        var store: LegacyQueueStore?
        do {
            store = try CLI.openLegacy(c).store
            checks.append(
                Check(
                    name: "legacy schema", ok: true,
                    detail: "\(config.legacy.database): variant \(store!.schema.variant.rawValue)"))
        } catch let e as CLIError {
            checks.append(Check(name: "legacy schema", ok: false, detail: e.message))
        }
        if let store {
            let mode = try await store.read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") ?? "?" }
            checks.append(Check(name: "journal mode", ok: mode.lowercased() == "wal", detail: mode))
            let health = try await store.objectsHealth()
            checks.append(Check(name: "_taskbridge_* objects", ok: health == .intact, detail: "\(health)"))
            try store.close()
        }
        if config.taskManager.isEmbedded {
            checks.append(
                Check(
                    name: "TaskManager", ok: true,
                    detail:
                        """
                        embedded (started by run at \(config.embedded.host):\(config.embedded.port); database \
                        \(config.embedded.database))
                        """
                ))
        } else if let key = config.taskManager.apiKey {
            let client = TaskManagerClient(
                configuration: try CLI.clientConfiguration(url: config.taskManager.url, key: key, config: config))
            do {
                _ = try await client.health()
                checks.append(Check(name: "API reachable", ok: true, detail: config.taskManager.url))
                do {
                    _ = try await client.listTasks(limit: 1)
                    checks.append(Check(name: "API key accepted", ok: true, detail: "authenticated request succeeded"))
                    for m in config.types {
                        do {
                            let t = try await client.getTaskType(name: m.name)
                            checks.append(
                                Check(
                                    name: "type \(m.legacyType)", ok: true,
                                    detail: "registered as \(m.name) \(t.version) (id \(t.id))"))
                        } catch .notFound {
                            checks.append(
                                Check(
                                    name: "type \(m.legacyType)", ok: m.mode == .off,
                                    detail: "\(m.name) not registered yet (run registers it)"))
                        }
                    }
                } catch {
                    checks.append(Check(name: "API key accepted", ok: false, detail: error.description))
                }
            } catch {
                checks.append(Check(name: "API reachable", ok: false, detail: error.description))
            }
            await client.shutdown()
        } else {
            checks.append(
                Check(name: "API key", ok: false, detail: "TASKMANAGER_API_KEY is not set (environment or .env)"))
        }
        if json {
            CLI.printJSON(
                .array(checks.map { ["check": .string($0.name), "ok": .bool($0.ok), "detail": .string($0.detail)] }))
        } else {
            for ch in checks { print("\(ch.ok ? "ok  " : "FAIL") \(ch.name): \(ch.detail)") }
        }
        if checks.contains(where: { !$0.ok }) {
            throw CLIError(code: .problems, message: "\(checks.filter { !$0.ok }.count) check(s) failed")
        }
    }
}
