import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// A TaskManager-compatible server on a SQLite file: `taskbridge serve`, the
/// in-process server of `url = "embedded"`, and the server every test talks to.
public final class EmbeddedTaskManager: Sendable {
    public let store: TaskStore
    public let configuration: ServerConfiguration
    let host: String
    let port: Int
    let logger: Logger
    private let boundPort = Mutex<Int?>(nil)
    private let running = Mutex<(group: ServiceGroup, task: Task<Void, any Error>)?>(nil)

    public init(
        databasePath: String, host: String = "127.0.0.1", port: Int = 0, configuration: ServerConfiguration,
        logger: Logger? = nil
    )
        throws
    {
        guard !configuration.apiKey.isEmpty else { throw EmbeddedServerError.missingAPIKey }
        self.store = try TaskStore(path: databasePath, configuration: configuration)
        self.configuration = configuration
        self.host = host
        self.port = port
        var l = logger ?? Logger(label: "taskmanager")
        if logger == nil { l.logLevel = .warning }
        self.logger = l
    }

    /// The Hummingbird application, for callers that run it in their own
    /// service group (`taskbridge serve`, `taskbridge run`).
    public func application(onRunning: (@Sendable (Int) async -> Void)? = nil) -> some ApplicationProtocol {
        let responder = TaskManagerResponder(store: store, configuration: configuration, logger: logger)
        return Application(
            responder: responder,
            configuration: .init(address: .hostname(host, port: port), serverName: nil),
            onServerRunning: { [self] channel in
                let p = channel.localAddress?.port ?? 0
                self.boundPort.withLock { $0 = p }
                await onRunning?(p)
            },
            logger: logger)
    }

    /// Starts in a background task and returns the bound port (use port 0 for
    /// an ephemeral one).
    @discardableResult
    public func start() async throws -> Int {
        let (stream, continuation) = AsyncStream<Int>.makeStream()
        let app = application(onRunning: { port in
            continuation.yield(port); continuation.finish()
        })
        // Our own group rather than `runService`, so that `stop()` can ask for a
        // graceful shutdown instead of cancelling the server mid-accept (which
        // HummingbirdCore reports as errors).
        let group = ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: [], logger: logger))
        let task = Task {
            defer { continuation.finish() }
            try await group.run()
        }
        running.withLock { $0 = (group, task) }
        for await port in stream { return port }
        // The stream ended without a port: the server failed to bind.
        _ = try await task.value
        throw EmbeddedServerError.failedToStart("\(host):\(port)")
    }

    public var boundPortNumber: Int? { boundPort.withLock { $0 } }

    public var baseURL: String { "http://\(host):\(boundPortNumber ?? port)/api" }

    /// Stops accepting connections, lets requests in flight finish, and
    /// returns once the server has shut down.
    public func stop() async {
        guard
            let (group, task) = running.withLock({ r in
                defer { r = nil }; return r
            })
        else { return }
        await group.triggerGracefulShutdown()
        _ = try? await task.value
    }
}

public enum EmbeddedServerError: Error, CustomStringConvertible, Sendable {
    case missingAPIKey
    case failedToStart(String)

    public var description: String {
        switch self {
        case .missingAPIKey:
            return
                """
                no API key: set TASKMANAGER_API_KEY (environment or .env) or pass --api-key; the server refuses to run \
                open
                """
        case .failedToStart(let address): return "the embedded TaskManager could not listen on \(address)"
        }
    }
}
