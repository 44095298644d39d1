import Foundation
import Logging
import TaskManagerClient
import TaskManagerModel
import TaskManagerServer

/// A throwaway directory that removes itself.
public final class TemporaryDirectory: Sendable {
    public let url: URL
    public init(prefix: String = "taskbridge") throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    public func path(_ name: String) -> String { url.appendingPathComponent(name).path }
    deinit { try? FileManager.default.removeItem(at: url) }
}

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
        return TaskManagerHarness(directory: dir, server: server, client: TaskManagerClient(configuration: cc), apiKey: apiKey, port: port)
    }

    init(directory: TemporaryDirectory, server: EmbeddedTaskManager, client: TaskManagerClient, apiKey: String, port: Int) {
        self.directory = directory
        self.server = server
        self.client = client
        self.apiKey = apiKey
        self.port = port
    }

    /// A second client, for example with another key or retry settings.
    public func makeClient(apiKey: String? = nil, configure: (inout ClientConfiguration) -> Void = { _ in }) throws -> TaskManagerClient {
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

/// Polls `condition` until it holds or the deadline passes; the only way
/// tests wait for something another process or task does.
public func eventually(
    timeout: Duration = .seconds(10), interval: Duration = .milliseconds(20), _ condition: () async throws -> Bool
) async throws -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try await Task.sleep(for: interval)
    }
    return try await condition()
}
