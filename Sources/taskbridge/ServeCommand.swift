import ArgumentParser
import BridgeConfig
import Foundation
import Logging
import ServiceLifecycle
import TaskManagerClient
import TaskManagerModel
import TaskManagerServer

/// `taskbridge serve`: the embedded TaskManager on its own.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve", abstract: "Run the embedded TaskManager-compatible API server.")

    @Option(help: "Address to listen on, HOST:PORT (default: [embedded] listen of bridge.conf, else 127.0.0.1:8787).")
    var listen: String?

    @Option(help: "SQLite file of the server (default: [embedded] database of bridge.conf, else data/taskmanager.db).")
    var database: String?

    @Option(name: .customLong("api-key-file"), help: "File holding the API key (first line); preferred to --api-key.")
    var apiKeyFile: String?

    @Option(
        name: .customLong("api-key"),
        help: "API key on the command line: visible in ps; use TASKMANAGER_API_KEY or --api-key-file.")
    var apiKey: String?

    @Option(name: .long, help: "Path to bridge.conf, read for [embedded] defaults when it exists.")
    var config: String = "bridge.conf"

    @Option(name: .customLong("claim-timeout"), help: "Lease length in seconds (TASK_CLAIM_TIMEOUT).")
    var claimTimeout: Double?

    @Option(name: .customLong("max-attempts"), help: "Attempts before a failed task stays failed (MAX_TASK_ATTEMPTS).")
    var maxAttempts: Int64?

    @Option(
        name: .customLong("max-params-bytes"),
        help: "Refuse (400) params whose encoding is larger (MAX_PARAMS_BYTES; the PHP server's column holds 65535).")
    var maxParamsBytes: Int?

    @Option(name: .customLong("rate-limit"), help: "Requests per client and path per window (enables the limiter).")
    var rateLimit: Int?

    @Option(name: .customLong("rate-window"), help: "Rate limit window in seconds.")
    var rateWindow: Double = 60

    func run() async throws {
        let env = ProcessInfo.processInfo.environment
        let file = FileManager.default.fileExists(atPath: config) ? try? ConfigLoader.load(path: config) : nil
        let dotEnv = DotEnv.load(path: ".env") ?? [:]
        let logger = CLI.makeLogger("taskmanager")
        var fromFile: String?
        if let apiKeyFile {
            guard let text = try? String(contentsOfFile: apiKeyFile, encoding: .utf8) else {
                throw CLIError.config("cannot read --api-key-file \(apiKeyFile)")
            }
            fromFile = text.split(whereSeparator: \.isNewline).first.map { $0.trimmingCharacters(in: .whitespaces) }
        }
        if apiKey != nil {
            logger.warning("--api-key puts the key where ps shows it; prefer TASKMANAGER_API_KEY or --api-key-file")
        }
        // The environment first (PrismQ's convention), then a key file, then .env and the flag.
        let candidates = [
            env["TASKMANAGER_API_KEY"], fromFile, dotEnv["TASKMANAGER_API_KEY"], file?.taskManager.apiKey, apiKey,
        ]
        guard let key = candidates.compactMap({ $0 }).first(where: { !$0.isEmpty }) else {
            throw CLIError.config(
                "no API key: set TASKMANAGER_API_KEY (environment or .env) or pass --api-key-file; "
                    + "the server refuses to run open")
        }
        var host = file?.embedded.host ?? "127.0.0.1", port = file?.embedded.port ?? 8787
        if let listen {
            guard let hp = ConfigLoader.parseHostPort(listen) else {
                throw CLIError.config("--listen must be HOST:PORT, got \(listen)")
            }
            (host, port) = hp
        }
        let db = database ?? file?.embedded.database ?? "data/taskmanager.db"
        var sc = ServerConfiguration(apiKey: key)
        sc.applyEnvironment(env)
        if let claimTimeout { sc.claimTimeout = claimTimeout }
        if let maxAttempts { sc.maxAttempts = maxAttempts }
        if let maxParamsBytes { sc.maxParamsBytes = maxParamsBytes }
        if let rateLimit { sc.rateLimit = .init(maxRequests: rateLimit, window: rateWindow) }
        let server: EmbeddedTaskManager
        do {
            server = try EmbeddedTaskManager(
                databasePath: db, host: host, port: port, configuration: sc, logger: logger)
        } catch {
            throw CLIError.runtime("cannot open \(db): \(error)")
        }
        let boundHost = host
        let app = server.application(onRunning: { bound in
            logger.info(
                "TaskManager API listening", metadata: ["url": "http://\(boundHost):\(bound)/api", "database": "\(db)"])
            // One machine-readable line, for scripts that start it on port 0.
            FileHandle.standardOutput.write(Data("listening http://\(boundHost):\(bound)/api\n".utf8))
        })
        let group = ServiceGroup(services: [app], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        do {
            try await group.run()
        } catch {
            throw CLIError.runtime("server stopped: \(error)")
        }
    }
}
