import ArgumentParser
import BridgeConfig
import BridgeEngine
import Foundation
import LegacyQueue
import Logging
import TaskManagerClient
import TaskManagerModel
import TaskManagerServer

enum ExitStatus: Int32 {
    case ok = 0, problems = 1, usage = 2, runtime = 3
}

/// An error that ends a command with a specific exit status and a message
/// (never containing the API key).
struct CLIError: Error {
    var code: ExitStatus
    var message: String
    static func config(_ m: String) -> CLIError { CLIError(code: .usage, message: m) }
    static func runtime(_ m: String) -> CLIError { CLIError(code: .runtime, message: m) }
}

struct ConfigOption: ParsableArguments {
    @Option(name: .long, help: "Path to bridge.conf.")
    var config: String = "bridge.conf"

    func load() throws -> BridgeConfiguration {
        do {
            return try ConfigLoader.load(path: config)
        } catch {
            throw CLIError.config(error.description)
        }
    }
}

enum CLI {
    static func makeLogger(_ label: String, level: Logger.Level = .info) -> Logger {
        var l = Logger(label: label)
        l.logLevel = ProcessInfo.processInfo.environment["LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? level
        return l
    }

    static var hostName: String { ProcessInfo.processInfo.hostName }

    static func openLegacy(_ config: BridgeConfiguration) throws -> LegacyQueueStore.OpenResult {
        do {
            return try LegacyQueueStore.open(
                path: config.legacy.database, table: config.legacy.table, bridgeID: config.bridge.id,
                createIfMissing: config.legacy.createIfMissing,
                busyTimeoutMilliseconds: config.legacy.busyTimeoutMilliseconds)
        } catch let e as LegacyQueueError {
            throw CLIError.config("\(config.file): \(e.description)")
        } catch {
            throw CLIError.runtime("cannot open \(config.legacy.database): \(error)")
        }
    }

    /// Commands other than run/install/demo never create the legacy file.
    static func openExisting(_ config: BridgeConfiguration) throws -> LegacyQueueStore {
        var c = config
        c.legacy.createIfMissing = false
        return try openLegacy(c).store
    }

    /// The key for the embedded server: `TASKMANAGER_API_KEY` (or .env), else
    /// a random key generated once into a 0600 file next to its database.
    /// Only the file's path is ever printed.
    static func embeddedKey(_ config: BridgeConfiguration, announce: (String) -> Void) throws -> String {
        if let k = config.taskManager.apiKey { return k }
        do {
            return try SecretFile.loadOrCreate(
                path: config.embedded.keyFile, what: "an API key for the embedded TaskManager", ownerOnly: false,
                announce: announce)
        } catch {
            throw CLIError.runtime("the embedded API key file: \(error)")
        }
    }

    static func clientConfiguration(url: String, key: String, config: BridgeConfiguration) throws -> ClientConfiguration
    {
        do {
            var c = try ClientConfiguration(baseURL: url, apiKey: key)
            c.maxConcurrentRequests = config.bridge.maxInFlight
            c.requestTimeout = .milliseconds(Int64(config.taskManager.requestTimeoutSeconds * 1000))
            c.maxAttempts = 1  // the engine retries with its own backoff and ledger
            return c
        } catch {
            throw CLIError.config("\(config.file): \(error.description)")
        }
    }

    /// Where the bridge's client points: the real API, or the embedded server
    /// (started by the caller when `embedded` is returned).
    static func remoteOrEmbedded(
        _ config: BridgeConfiguration, announce: (String) -> Void
    ) throws -> (ClientConfiguration, EmbeddedTaskManager?) {
        if !config.taskManager.isEmbedded {
            guard let key = config.taskManager.apiKey else {
                throw CLIError.config(
                    "\(config.file): TASKMANAGER_API_KEY is not set (environment or .env) for \(config.taskManager.url)"
                )
            }
            return (try clientConfiguration(url: config.taskManager.url, key: key, config: config), nil)
        }
        let key = try embeddedKey(config, announce: announce)
        var sc = ServerConfiguration(apiKey: key)
        sc.applyEnvironment(ProcessInfo.processInfo.environment)
        let server: EmbeddedTaskManager
        do {
            server = try EmbeddedTaskManager(
                databasePath: config.embedded.database, host: config.embedded.host, port: config.embedded.port,
                configuration: sc)
        } catch {
            throw CLIError.runtime(
                "cannot open the embedded TaskManager database \(config.embedded.database): \(error)")
        }
        let url =
            "http://\(config.embedded.host == "0.0.0.0" ? "127.0.0.1" : config.embedded.host):"
            + "\(config.embedded.port)/api"
        return (try clientConfiguration(url: url, key: key, config: config), server)
    }

    static func printJSON(_ value: JSONValue) {
        print(PrettyJSON.format(value))
    }

    static func ageText(_ seconds: Double?) -> String { StatusModel.ageText(seconds) }

    static func table(_ header: [String], _ rows: [[String]]) -> String {
        var widths = header.map(\.count)
        for r in rows { for (i, c) in r.enumerated() where i < widths.count { widths[i] = max(widths[i], c.count) } }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, c in
                i == 0
                    ? c.padding(toLength: widths[i], withPad: " ", startingAt: 0)
                    : String(repeating: " ", count: widths[i] - c.count) + c
            }.joined(separator: "  ")
        }
        return ([line(header)] + rows.map(line)).joined(separator: "\n")
    }
}

/// Indented JSON for people; scripts get the same structure.
enum PrettyJSON {
    static func format(_ v: JSONValue, indent: Int = 0) -> String {
        let pad = String(repeating: "  ", count: indent + 1), end = String(repeating: "  ", count: indent)
        switch v {
        case .array(let a) where !a.isEmpty:
            return "[\n" + a.map { pad + format($0, indent: indent + 1) }.joined(separator: ",\n") + "\n\(end)]"
        case .object(let m) where !m.isEmpty:
            return "{\n"
                + m.map { pad + PHPJSON.encode(.string($0.key)) + ": " + format($0.value, indent: indent + 1) }
                .joined(separator: ",\n") + "\n\(end)}"
        case .object: return "{}"
        default: return PHPJSON.encode(v)
        }
    }
}
