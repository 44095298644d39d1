import ArgumentParser
import BridgeConfig
import BridgeEngine
import Foundation
import LegacyQueue
import Logging
import TaskManagerClient
import TaskManagerModel
import TaskManagerServer

/// `taskbridge verify`: parity between SQLite and TaskManager.
struct VerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Compare SQLite and TaskManager for the bridged types and classify every difference.",
        discussion:
            "Exit codes: 0 parity holds, 1 findings, 2 usage or configuration error, 3 a side could not be read.")

    @OptionGroup var options: ConfigOption
    @Option(help: "Only this legacy task_type.") var type: String?
    @Option(help: "Rows younger than this many seconds are still in flight, not findings.") var grace: Double = 60
    @Flag(help: "Every row-level finding as JSON.") var json = false
    @Flag(help: "Re-drive what can be re-driven, then verify again.") var repair = false

    /// One queue: as always. Several: each queue in turn, `queues` in the
    /// JSON, and the exit status of the worst.
    func run() async throws {
        let configs = try options.loadAll()
        if configs.count == 1 { return try await verifyOne(configs[0]) }
        var members: [JSONMember] = []
        var worst: CLIError?
        for config in configs {
            if !json { print("queue \(config.queue) (\(config.legacy.database))") }
            let session = try await APISession.open(config)
            do {
                let outcome = try await Self.verify(
                    config: config, session: session, type: type, grace: grace, repair: repair, quiet: json)
                members.append(JSONMember(config.queue, outcome.json))
                if !json { print(outcome.text + "\n") }
                if !outcome.report.readErrors.isEmpty {
                    worst = CLIError(code: .runtime, message: "queue \(config.queue): a side could not be read")
                } else if !outcome.report.parityHolds, worst?.code != .runtime {
                    worst = CLIError(
                        code: .problems,
                        message: "parity does not hold in queue \(config.queue): \(outcome.report.breaking) finding(s)")
                }
            } catch {
                await session.close()
                throw error
            }
            await session.close()
        }
        if json { CLI.printJSON(["parity": .bool(worst == nil), "queues": .object(members)]) }
        if let worst { throw worst }
    }

    func verifyOne(_ config: BridgeConfiguration) async throws {
        let session = try await APISession.open(config)
        defer { Task { await session.close() } }
        let outcome = try await Self.verify(
            config: config, session: session, type: type, grace: grace, repair: repair, quiet: json)
        // Entries of earlier generations (a recreated or restored queue) belong
        // to rows that no longer exist: counted, exported, never compared.
        let archived = try await session.store.archivedCount()
        if json {
            var j = outcome.json
            if case .object(var m) = j {
                m.append(JSONMember("archived_entries", .int(Int64(archived))))
                j = .object(m)
            }
            CLI.printJSON(j)
        } else {
            print(outcome.text)
            if archived > 0 {
                print(
                    "\(archived) ledger entr\(archived == 1 ? "y" : "ies") of rows that no longer exist archived "
                        + "(earlier generations; in the export, not compared)")
            }
        }
        if !outcome.report.readErrors.isEmpty {
            throw CLIError(code: .runtime, message: "a side could not be read: \(outcome.report.readErrors.first!)")
        }
        if !outcome.report.parityHolds {
            throw CLIError(code: .problems, message: "parity does not hold: \(outcome.report.breaking) finding(s)")
        }
    }

    struct Outcome {
        var report: Verifier.Report
        var before: Verifier.Report?
        var json: JSONValue
        var text: String
    }

    static func verify(
        config: BridgeConfiguration, session: APISession, type: String?, grace: Double, repair: Bool, quiet: Bool
    ) async throws -> Outcome {
        var types = config.types
        if let type {
            guard let m = config.mapping(forLegacyType: type) else {
                throw CLIError.config("\(config.file): task_type \"\(type)\" is not mapped")
            }
            types = [m]
        }
        var options = Verifier.Options(types: types)
        options.grace = grace
        let verifier = Verifier(
            store: session.store, client: session.client, bridgeID: config.bridge.id, options: options)
        let bar = ProgressBar(enabled: !quiet)
        var report = try await verifier.run(progress: bar.update)
        bar.finish()
        var before: Verifier.Report?
        if repair && !report.parityHolds && report.readErrors.isEmpty {
            before = report
            let policy = CapturePolicy(config: config)
            var (done, notDone) = try await verifier.repair(report, policy: policy)
            // Send and mirror here only when no bridge runs on this file; a
            // running bridge re-drives the rows itself (two senders at once
            // would only lean on the API's dedupe).
            if let lock = try? BridgeLock(databasePath: config.legacy.database) {
                let engine = BridgeEngine(
                    config: config, store: session.store, client: session.client,
                    logger: CLI.makeLogger("verify", level: .error))
                try await engine.driveOnce()
                _ = lock
            } else {
                done.append(
                    "a running bridge holds this file: it sends and mirrors the re-driven rows; verify again shortly")
            }
            report = try await verifier.run(progress: bar.update)
            bar.finish()
            report.repaired = done
            report.notRepaired = notDone
        }
        return Outcome(
            report: report, before: before, json: Self.json(report, before: before, types: types),
            text: Self.text(report, before: before, types: types))
    }

    static func json(_ r: Verifier.Report, before: Verifier.Report?, types: [TypeMapping]) -> JSONValue {
        var summary: [JSONMember] = []
        for t in types {
            let c = r.counts[t.legacyType] ?? [:]
            summary.append(
                JSONMember(
                    t.legacyType, .object(ParityClass.allCases.map { JSONMember($0.rawValue, .int(Int64(c[$0] ?? 0))) })
                ))
        }
        var m: [JSONMember] = [
            JSONMember("parity", .bool(r.parityHolds)), JSONMember("checked_rows", .int(Int64(r.checkedRows))),
            JSONMember("breaking_findings", .int(Int64(r.breaking))), JSONMember("summary", .object(summary)),
            JSONMember("findings", .array(r.findings.map(\.json))),
            JSONMember("read_errors", .array(r.readErrors.map { .string($0) })),
        ]
        if let before {
            m.append(
                JSONMember(
                    "before_repair",
                    .object([
                        JSONMember("breaking_findings", .int(Int64(before.breaking))),
                        JSONMember("findings", .array(before.findings.map(\.json))),
                    ])))
            m.append(JSONMember("repaired", .array(r.repaired.map { .string($0) })))
            m.append(JSONMember("not_repaired", .array(r.notRepaired.map { .string($0) })))
        }
        return .object(m)
    }

    static func text(_ r: Verifier.Report, before: Verifier.Report?, types: [TypeMapping]) -> String {
        let classes = ParityClass.allCases
        var rows: [[String]] = []
        var totals = [ParityClass: Int]()
        for t in types {
            let c = r.counts[t.legacyType] ?? [:]
            rows.append([t.legacyType] + classes.map { "\(c[$0] ?? 0)" })
            for k in classes { totals[k, default: 0] += c[k] ?? 0 }
        }
        rows.append(["total"] + classes.map { "\(totals[$0] ?? 0)" })
        var out = CLI.table(["type"] + classes.map(\.rawValue), rows)
        out +=
            "\nchecked \(r.checkedRows) row(s): "
            + (r.parityHolds ? "parity holds" : "\(r.breaking) finding(s) break parity")
        if let before {
            out +=
                """
                \nrepair: \(before.breaking) finding(s) before; re-driven: \(r.repaired.count); not repairable: \
                \(r.notRepaired.count)
                """
            for line in r.notRepaired.prefix(20) { out += "\n  - \(line)" }
        }
        for e in r.readErrors.prefix(5) { out += "\nread error: \(e)" }
        return out
    }
}

/// Progress on a terminal (stderr), silent otherwise.
final class ProgressBar: Sendable {
    let enabled: Bool
    init(enabled: Bool) { self.enabled = enabled && isatty(STDERR_FILENO) == 1 }
    @Sendable func update(_ done: Int, _ total: Int) {
        guard enabled, total > 0 else { return }
        let width = 30, filled = min(width, done * width / total)
        let bar = String(repeating: "#", count: filled) + String(repeating: " ", count: width - filled)
        FileHandle.standardError.write(Data("\r[\(bar)] \(done)/\(total)".utf8))
    }
    func finish() { if enabled { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) } }
}

/// The legacy store and a TaskManager client for read-mostly commands. With
/// `url = "embedded"` it uses the running embedded server when one answers
/// on the configured address, else opens the embedded database itself.
struct APISession: Sendable {
    let store: LegacyQueueStore
    let client: TaskManagerClient
    let server: EmbeddedTaskManager?

    static func open(_ config: BridgeConfiguration) async throws -> APISession {
        let store = try CLI.openExisting(config)
        if !config.taskManager.isEmbedded {
            guard let key = config.taskManager.apiKey else {
                throw CLIError.config("\(config.file): TASKMANAGER_API_KEY is not set (environment or .env)")
            }
            return APISession(
                store: store,
                client: TaskManagerClient(configuration: try readClient(config.taskManager.url, key, config)),
                server: nil)
        }
        let key = try CLI.embeddedKey(config, announce: { FileHandle.standardError.write(Data(($0 + "\n").utf8)) })
        let running = "http://\(config.embedded.host):\(config.embedded.port)/api"
        let probe = TaskManagerClient(configuration: try readClient(running, key, config))
        if (try? await probe.listTasks(limit: 1)) != nil {
            return APISession(store: store, client: probe, server: nil)
        }
        await probe.shutdown()
        var quiet = Logger(label: "taskmanager")
        quiet.logLevel = .error
        let server = try EmbeddedTaskManager(
            databasePath: config.embedded.database, configuration: ServerConfiguration(apiKey: key), logger: quiet)
        let port = try await server.start()
        return APISession(
            store: store,
            client: TaskManagerClient(configuration: try readClient("http://127.0.0.1:\(port)/api", key, config)),
            server: server)
    }

    static func readClient(_ url: String, _ key: String, _ config: BridgeConfiguration) throws -> ClientConfiguration {
        var c = try CLI.clientConfiguration(url: url, key: key, config: config)
        c.maxAttempts = 3  // reads are safe to retry
        c.requestTimeout = .seconds(10)
        return c
    }

    func close() async {
        await client.shutdown()
        await server?.stop()
        try? store.close()
    }
}
