import ArgumentParser
import BridgeConfig
import BridgeEngine
import BridgeRuntime
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
    @Option(
        name: .long,
        help: "The queue ([queues.NAME]); required when the file names several, optional otherwise.")
    var queue: String?

    func loadFleet() throws -> FleetConfiguration {
        do {
            return try ConfigLoader.loadFleet(path: config)
        } catch {
            throw CLIError.config(error.description)
        }
    }

    /// The queue `--queue` names, or the file's only queue.
    func load() throws -> BridgeConfiguration {
        do {
            return try loadFleet().select(queue)
        } catch let e as ConfigError {
            throw CLIError.config(e.description)
        }
    }

    /// The queue `--queue` names, or every queue of the file.
    func loadAll() throws -> [BridgeConfiguration] {
        do {
            return try loadFleet().selectAll(queue)
        } catch let e as ConfigError {
            throw CLIError.config(e.description)
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

    /// A composition failure as the exit status it stands for.
    static func composed<T>(_ body: () throws(Composition.Failure) -> T) throws -> T {
        do {
            return try body()
        } catch {
            switch error.kind {
            case .configuration: throw CLIError.config(error.description)
            case .runtime: throw CLIError.runtime(error.description)
            }
        }
    }

    static func openLegacy(_ config: BridgeConfiguration) throws -> LegacyQueueStore.OpenResult {
        try composed { () throws(Composition.Failure) in try Composition.openStore(config) }
    }

    /// Commands other than run/install/demo never create the legacy file.
    static func openExisting(_ config: BridgeConfiguration) throws -> LegacyQueueStore {
        try composed { () throws(Composition.Failure) in try Composition.openStore(config, createIfMissing: false) }
            .store
    }

    static func embeddedKey(_ config: BridgeConfiguration, announce: (String) -> Void) throws -> String {
        try composed { () throws(Composition.Failure) in try Composition.embeddedKey(config, announce: announce) }
    }

    static func clientConfiguration(url: String, key: String, config: BridgeConfiguration) throws -> ClientConfiguration
    {
        try composed { () throws(Composition.Failure) in
            try Composition.clientConfiguration(url: url, key: key, config: config)
        }
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
