import Foundation
import Logging
import TaskManagerClient
import TaskManagerModel
import TaskManagerServer

/// The embedded TaskManager on an ephemeral loopback port, on a fresh SQLite
/// file, with a client for it: what tests, the demo and the benchmarks share.
public final class TaskManagerHarness: Sendable {
    public let directory: TemporaryDirectory
    public let server: EmbeddedTaskManager
    public let client: TaskManagerClient
    public let apiKey: String
    public let port: Int

    public var baseURL: String { "http://127.0.0.1:\(port)/api" }

    public static func start(
        apiKey: String = "test-key-" + UUID().uuidString.prefix(8),
        directory: TemporaryDirectory? = nil,
        configure: (inout ServerConfiguration) -> Void = { _ in },
        clientConfigure: (inout ClientConfiguration) -> Void = { _ in }
    ) async throws -> TaskManagerHarness {
        let dir = try directory ?? TemporaryDirectory(prefix: "taskmanager")
        var config = ServerConfiguration(apiKey: apiKey)
        configure(&config)
        let server = try EmbeddedTaskManager(databasePath: dir.path("taskmanager.db"), configuration: config)
        let port = try await server.start()
        var cc = try ClientConfiguration(baseURL: "http://127.0.0.1:\(port)/api", apiKey: apiKey)
        clientConfigure(&cc)
        return TaskManagerHarness(
            directory: dir, server: server, client: TaskManagerClient(configuration: cc), apiKey: apiKey, port: port)
    }

    init(
        directory: TemporaryDirectory, server: EmbeddedTaskManager, client: TaskManagerClient, apiKey: String, port: Int
    ) {
        self.directory = directory
        self.server = server
        self.client = client
        self.apiKey = apiKey
        self.port = port
    }

    /// A second client, for example with another key or retry settings.
    public func makeClient(
        apiKey: String? = nil, configure: (inout ClientConfiguration) -> Void = { _ in }
    ) throws -> TaskManagerClient {
        var cc = try ClientConfiguration(baseURL: baseURL, apiKey: apiKey ?? self.apiKey)
        configure(&cc)
        return TaskManagerClient(configuration: cc)
    }

    public func shutdown() async {
        await client.shutdown()
        await server.stop()
    }

    /// Runs `body` with a fresh harness and always shuts it down.
    public static func with<T: Sendable>(
        configure: (inout ServerConfiguration) -> Void = { _ in },
        _ body: (TaskManagerHarness) async throws -> T
    ) async throws -> T {
        let h = try await start(configure: configure)
        do {
            let r = try await body(h)
            await h.shutdown()
            return r
        } catch {
            await h.shutdown()
            throw error
        }
    }
}
