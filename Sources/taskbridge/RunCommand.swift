import ArgumentParser
import BridgeConfig
import BridgeDashboard
import BridgeEngine
import Foundation
import Hummingbird
import LegacyQueue
import Logging
import Metrics
import Prometheus
import ServiceLifecycle
import TaskManagerClient
import TaskManagerModel
import TaskManagerServer

/// `taskbridge run`: the main job.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Run the bridge (and the embedded TaskManager when url = \"embedded\").")

    @OptionGroup var options: ConfigOption

    func run() async throws {
        let config = try options.load()
        let logger = CLI.makeLogger("taskbridge")
        let stack = try await BridgeStack.start(config: config, logger: logger, announce: { logger.notice("\($0)") })
        let group = ServiceGroup(
            services: stack.services, gracefulShutdownSignals: [.sigterm, .sigint], cancellationSignals: [],
            logger: logger)
        do {
            try await group.run()
        } catch {
            await stack.shutdown()
            throw CLIError.runtime("bridge stopped: \(error)")
        }
        await stack.shutdown()
        logger.notice("stopped cleanly")
    }
}

/// The running pieces of a bridge process, shared by `run` and `demo`.
struct BridgeStack {
    let config: BridgeConfiguration
    let store: LegacyQueueStore
    let client: TaskManagerClient
    let engine: BridgeEngine
    let server: EmbeddedTaskManager?
    let lock: BridgeLock
    let services: [any Service]

    static func start(
        config: BridgeConfiguration, logger: Logger, announce: (String) -> Void, metrics: Bool = true
    ) async throws -> BridgeStack {
        let opened = try CLI.openLegacy(config)
        if opened.created {
            announce("created an empty variant A task_queue at \(config.legacy.database) (create_if_missing = true)")
        }
        let lock: BridgeLock
        do {
            lock = try BridgeLock(databasePath: config.legacy.database)
        } catch {
            throw CLIError.runtime("\(error)")
        }
        let (clientConfig, server) = try CLI.remoteOrEmbedded(config, announce: announce)
        var services: [any Service] = []
        if let server {
            // Bound before the engine starts so its first requests connect.
            let app = server.application(onRunning: { port in
                logger.info(
                    "embedded TaskManager listening", metadata: ["url": "http://\(config.embedded.host):\(port)/api"])
            })
            services.append(app)
        }
        let client = TaskManagerClient(configuration: clientConfig, logger: logger)
        let engine = BridgeEngine(
            config: config, store: opened.store, client: client, logger: logger, host: CLI.hostName)
        if metrics, let listen = config.bridge.metricsListen {
            let token: AdminToken
            do {
                token = try AdminToken.loadOrCreate(path: config.bridge.adminTokenFile, announce: announce)
            } catch {
                throw CLIError.config("\(config.file): [bridge] admin_token_file: \(error)")
            }
            let dashboard = Dashboard(engine: engine, config: config, token: token, host: CLI.hostName, logger: logger)
            services.append(
                try MetricsEndpoint.make(
                    listen: listen, engine: engine, config: config, dashboard: dashboard, logger: logger))
        }
        services.append(EngineService(engine: engine))
        logger.info(
            "bridge starting",
            metadata: [
                "legacy": "\(config.legacy.database)", "variant": "\(opened.store.schema.variant.rawValue)",
                "taskmanager": "\(config.taskManager.isEmbedded ? "embedded" : config.taskManager.url)",
                "bridge_id": "\(config.bridge.id)",
            ])
        return BridgeStack(
            config: config, store: opened.store, client: client, engine: engine, server: server, lock: lock,
            services: services)
    }

    func shutdown() async {
        await client.shutdown()
        try? store.close()
    }
}

/// Runs the engine under the service group; graceful shutdown stops claims
/// and sends, lets requests in flight finish, and returns.
struct EngineService: Service {
    let engine: BridgeEngine
    func run() async throws {
        try await withGracefulShutdownHandler {
            try await engine.run()
        } onGracefulShutdown: {
            engine.stop()
        }
    }
}

enum MetricsEndpoint {
    static let registry: PrometheusCollectorRegistry = {
        let r = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: r))
        return r
    }()

    /// `/metrics` (Prometheus text), `/health` (200 or 503 with details),
    /// `/status.json`, and the dashboard at `/`.
    static func make(
        listen: String, engine: BridgeEngine, config: BridgeConfiguration, dashboard: Dashboard, logger: Logger
    ) throws
        -> any Service
    {
        guard let (host, port) = ConfigLoader.parseHostPort(listen) else {
            throw CLIError.config("[bridge] metrics_listen must be HOST:PORT")
        }
        let registry = Self.registry
        let router = Router()
        router.get("/metrics") { _, _ -> Response in
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4"
            return Response(
                status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
        }
        // The model `status --json` prints (`StatusModel`), read from the same
        // store: a page or a script polling the bridge sees what the CLI sees.
        router.get("/status.json") { _, _ -> Response in
            var headers = HTTPFields()
            headers[.contentType] = "application/json"
            do {
                let view = try await StatusModel.build(config: config, store: engine.store)
                return Response(
                    status: .ok, headers: headers,
                    body: .init(byteBuffer: ByteBuffer(string: PHPJSON.encode(view.json))))
            } catch {
                let body = PHPJSON.encode(["error": .string(LogSafe.escape("\(error)"))])
                return Response(
                    status: .serviceUnavailable, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
            }
        }
        router.get("/health") { _, _ -> Response in
            let h = await engine.health()
            var headers = HTTPFields()
            headers[.contentType] = "application/json"
            return Response(
                status: h.healthy ? .ok : .serviceUnavailable, headers: headers,
                body: .init(byteBuffer: ByteBuffer(string: PHPJSON.encode(h.details))))
        }
        dashboard.addRoutes(to: router)
        var quiet = logger
        quiet.logLevel = .warning
        return Application(router: router, configuration: .init(address: .hostname(host, port: port)), logger: quiet)
    }
}
