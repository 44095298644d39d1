import BridgeConfig
import BridgeEngine
import Foundation
import LegacyQueue
import Logging
import TaskManagerClient
import TaskManagerModel
import TaskManagerServer

/// The composition root: configuration to legacy store, TaskManager client,
/// embedded server and engine, in one place for `run`, the one-shot
/// commands, the demo, the benchmarks and the test harness. A queue is one
/// instance of it (`QueueInstance`); several queues share one client (one
/// in-flight cap) and one embedded server.
public enum Composition {
    /// Why composing failed, with the exit status a command maps it to.
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public enum Kind: Sendable { case configuration, runtime }
        public var kind: Kind
        public var description: String
        static func configuration(_ m: String) -> Failure { Failure(kind: .configuration, description: m) }
        static func runtime(_ m: String) -> Failure { Failure(kind: .runtime, description: m) }
    }

    /// The queue's legacy file, created only where the file says so.
    public static func openStore(
        _ config: BridgeConfiguration, createIfMissing: Bool? = nil
    ) throws(Failure) -> LegacyQueueStore.OpenResult {
        do {
            return try LegacyQueueStore.open(
                path: config.legacy.database, table: config.legacy.table, bridgeID: config.bridge.id,
                createIfMissing: createIfMissing ?? config.legacy.createIfMissing,
                busyTimeoutMilliseconds: config.legacy.busyTimeoutMilliseconds)
        } catch let e as LegacyQueueError {
            throw .configuration("\(config.file): \(e.description)")
        } catch {
            throw .runtime("cannot open \(config.legacy.database): \(error)")
        }
    }

    /// The key for the embedded server: `TASKMANAGER_API_KEY` (or .env), else
    /// a random key generated once into a 0600 file next to its database.
    /// Only the file's path is ever printed.
    public static func embeddedKey(
        _ config: BridgeConfiguration, announce: (String) -> Void
    ) throws(Failure) -> String {
        if let k = config.taskManager.apiKey { return k }
        do {
            return try SecretFile.loadOrCreate(
                path: config.embedded.keyFile, what: "an API key for the embedded TaskManager", ownerOnly: false,
                announce: announce)
        } catch {
            throw .runtime("the embedded API key file: \(error)")
        }
    }

    /// The bridge's client settings: one in-flight cap for every queue, one
    /// attempt per request (the engine retries with its own backoff and ledger).
    public static func clientConfiguration(
        url: String, key: String, config: BridgeConfiguration
    ) throws(Failure) -> ClientConfiguration {
        do {
            var c = try ClientConfiguration(baseURL: url, apiKey: key)
            c.maxConcurrentRequests = config.bridge.maxInFlight
            c.requestTimeout = .milliseconds(Int64(config.taskManager.requestTimeoutSeconds * 1000))
            c.maxAttempts = 1
            return c
        } catch {
            throw .configuration("\(config.file): \(error.description)")
        }
    }

    /// Where the bridge's client points: the real API, or the embedded server
    /// (started by the caller when one is returned).
    public static func endpoint(
        _ config: BridgeConfiguration, announce: (String) -> Void
    ) throws(Failure) -> (ClientConfiguration, EmbeddedTaskManager?) {
        if !config.taskManager.isEmbedded {
            guard let key = config.taskManager.apiKey else {
                throw .configuration(
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
            throw .runtime("cannot open the embedded TaskManager database \(config.embedded.database): \(error)")
        }
        let host = config.embedded.host == "0.0.0.0" ? "127.0.0.1" : config.embedded.host
        let url = "http://\(host):\(config.embedded.port)/api"
        return (try clientConfiguration(url: url, key: key, config: config), server)
    }
}

/// One queue of a process: its store, its lock (when it runs loops) and its
/// engine.
public final class QueueInstance: Sendable {
    public let config: BridgeConfiguration
    public let store: LegacyQueueStore
    public let engine: BridgeEngine
    /// Held while the engine runs loops on the file; nil for one-shot use.
    public let lock: BridgeLock?
    public let created: Bool

    init(config: BridgeConfiguration, store: LegacyQueueStore, engine: BridgeEngine, lock: BridgeLock?, created: Bool) {
        self.config = config
        self.store = store
        self.engine = engine
        self.lock = lock
        self.created = created
    }

    /// Opens the queue's file and builds its engine on `client`. With
    /// `lock`, refuses when another bridge already runs on the file.
    public static func open(
        _ config: BridgeConfiguration, client: TaskManagerClient, logger: Logger, host: String, lock: Bool
    ) throws(Composition.Failure) -> QueueInstance {
        let opened = try Composition.openStore(config)
        var held: BridgeLock?
        if lock {
            do {
                held = try BridgeLock(databasePath: config.legacy.database)
            } catch {
                try? opened.store.close()
                throw .runtime("\(error)")
            }
        }
        var l = logger
        l[metadataKey: "queue"] = "\(config.queue)"
        let engine = BridgeEngine(config: config, store: opened.store, client: client, logger: l, host: host)
        return QueueInstance(config: config, store: opened.store, engine: engine, lock: held, created: opened.created)
    }

    public func close() {
        try? store.close()
    }
}
