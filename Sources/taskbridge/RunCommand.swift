import ArgumentParser
import BridgeConfig
import BridgeDashboard
import BridgeEngine
import BridgeRuntime
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

/// `taskbridge run`: the main job. Bridges every queue the file names in
/// one process (`--queue` runs one of them): each queue its own lock,
/// capture, ledger and loops; one TaskManager client with one in-flight cap;
/// one embedded server; one listener.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Run the bridge (and the embedded TaskManager when url = \"embedded\").")

    @OptionGroup var options: ConfigOption

    func run() async throws {
        let fleet = try options.loadFleet()
        let configs = try options.loadAll()
        let logger = CLI.makeLogger("taskbridge")
        let stack = try await FleetStack.start(
            fleet: fleet, queues: configs, logger: logger, announce: { logger.notice("\($0)") })
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

/// The running pieces of a bridge process: the composition of every queue
/// on one client, one embedded server and one listener.
struct FleetStack {
    let client: TaskManagerClient
    let server: EmbeddedTaskManager?
    let queues: [QueueSupervisor]
    let services: [any Service]

    static func start(
        fleet: FleetConfiguration, queues configs: [BridgeConfiguration], logger: Logger,
        announce: (String) -> Void, metrics: Bool = true
    ) async throws -> FleetStack {
        let shared = configs[0]
        let (clientConfig, server) = try CLI.composed { () throws(Composition.Failure) in
            try Composition.endpoint(shared, announce: announce)
        }
        let client = TaskManagerClient(configuration: clientConfig, logger: logger)
        do {
            return try await assemble(
                fleet: fleet, configs: configs, client: client, server: server, logger: logger, announce: announce,
                metrics: metrics)
        } catch {
            // The client's connection pool must be shut down before it goes.
            await client.shutdown()
            throw error
        }
    }

    private static func assemble(
        fleet: FleetConfiguration, configs: [BridgeConfiguration], client: TaskManagerClient,
        server: EmbeddedTaskManager?, logger: Logger, announce: (String) -> Void, metrics: Bool
    ) async throws -> FleetStack {
        let shared = configs[0]
        let queues = configs.map {
            QueueSupervisor(config: $0, client: client, logger: logger, host: CLI.hostName)
        }
        // One queue: a file that cannot be opened ends `run` (exit 2 or 3,
        // as always). Several: each queue that cannot is reported and retried.
        if queues.count == 1 {
            try CLI.composed { () throws(Composition.Failure) in try queues[0].openNow() }
            if queues[0].instance?.created == true {
                announce(
                    "created an empty variant A task_queue at \(shared.legacy.database) (create_if_missing = true)")
            }
        }
        var services: [any Service] = []
        if let server {
            // Bound before the engines start so their first requests connect.
            services.append(
                server.application(onRunning: { port in
                    logger.info(
                        "embedded TaskManager listening",
                        metadata: ["url": "http://\(shared.embedded.host):\(port)/api"])
                }))
        }
        if metrics, let listen = shared.bridge.metricsListen {
            let token: AdminToken
            do {
                token = try AdminToken.loadOrCreate(path: shared.bridge.adminTokenFile, announce: announce)
            } catch {
                throw CLIError.config("\(shared.file): [bridge] admin_token_file: \(error)")
            }
            let registry = MetricsEndpoint.registry
            let http = BridgeHTTP(
                queues: queues, named: fleet.named, token: token, host: CLI.hostName, logger: logger,
                metrics: { registry.emitToBuffer() })
            do {
                services.append(try http.application(listen: listen))
            } catch {
                throw CLIError.config("\(shared.file): \(error)")
            }
        }
        for q in queues { services.append(QueueService(supervisor: q, failFast: queues.count == 1)) }
        for q in configs {
            logger.info(
                "bridge starting",
                metadata: [
                    "queue": "\(q.queue)", "legacy": "\(q.legacy.database)",
                    "taskmanager": "\(q.taskManager.isEmbedded ? "embedded" : q.taskManager.url)",
                    "bridge_id": "\(q.bridge.id)",
                ])
        }
        return FleetStack(client: client, server: server, queues: queues, services: services)
    }

    func shutdown() async {
        for q in queues { q.stop() }
        await client.shutdown()
    }
}

/// Runs one queue under the service group; graceful shutdown stops claims
/// and sends, lets requests in flight finish, and returns.
struct QueueService: Service {
    let supervisor: QueueSupervisor
    let failFast: Bool
    func run() async throws {
        try await withGracefulShutdownHandler {
            try await supervisor.run(failFast: failFast)
        } onGracefulShutdown: {
            supervisor.stop()
        }
    }
}

enum MetricsEndpoint {
    static let registry: PrometheusCollectorRegistry = {
        let r = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: r))
        return r
    }()
}
