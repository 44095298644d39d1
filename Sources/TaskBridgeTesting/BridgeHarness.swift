import BridgeConfig
import BridgeEngine
import BridgeRuntime
import Foundation
import GRDB
import LegacyQueue
import Logging
import Synchronization
import TaskManagerClient
import TaskManagerModel
import TaskManagerServer

/// A legacy queue file of a chosen variant, the embedded TaskManager on an
/// ephemeral port, and a bridge engine between them, all in one temporary
/// directory: the rig for tests, `taskbridge demo` and the benchmarks.
public final class BridgeHarness: Sendable {
    public let tm: TaskManagerHarness
    public let legacyPath: String
    public let config: BridgeConfiguration
    public let store: LegacyQueueStore
    public let engine: BridgeEngine
    public let bridgeClient: TaskManagerClient
    /// In front of the server when started `withProxy`: fault injection.
    public let proxy: FaultProxy?
    private let running = Mutex<Task<Void, Never>?>(nil)

    public static func start(
        variant: LegacyFixture = .a,
        types: [TypeMapping],
        withProxy: Bool = false,
        configure: (inout BridgeConfiguration) -> Void = { _ in },
        startEngine: Bool = true,
        logLevel: Logger.Level = .warning,
        server: (inout ServerConfiguration) -> Void = { _ in }
    ) async throws -> BridgeHarness {
        let tm = try await TaskManagerHarness.start(configure: server)
        var proxy: FaultProxy?
        if withProxy {
            let p = FaultProxy(upstream: tm.baseURL)
            try await p.start()
            proxy = p
        }
        let legacyPath = tm.directory.path("worker_queue.db")
        try variant.create(at: legacyPath)
        var config = BridgeConfiguration(
            file: tm.directory.path("bridge.conf"),
            legacy: .init(database: legacyPath),
            embedded: .init(database: tm.directory.path("unused.db"), keyFile: tm.directory.path("unused.key")))
        config.taskManager.url = proxy?.baseURL ?? tm.baseURL
        config.taskManager.apiKey = tm.apiKey
        config.bridge.metricsListen = nil
        config.bridge.pollIntervalSeconds = 0.01
        config.bridge.mirrorIntervalSeconds = 0.05
        config.types = types
        configure(&config)
        var cc = try Composition.clientConfiguration(url: config.taskManager.url, key: tm.apiKey, config: config)
        cc.requestTimeout = .seconds(5)
        let client = TaskManagerClient(configuration: cc)
        var logger = Logger(label: "bridge-test")
        logger.logLevel = logLevel
        // The composition `run` uses, without the lock: tests drive several
        // engines on one file on purpose (the crash tests).
        let queue = try QueueInstance.open(config, client: client, logger: logger, host: "test-host", lock: false)
        let store = queue.store, engine = queue.engine
        let h = BridgeHarness(
            tm: tm, legacyPath: legacyPath, config: config, store: store, engine: engine, bridgeClient: client,
            proxy: proxy)
        if startEngine {
            h.startEngine()
            try await h.waitReady()
        }
        return h
    }

    init(
        tm: TaskManagerHarness, legacyPath: String, config: BridgeConfiguration, store: LegacyQueueStore,
        engine: BridgeEngine,
        bridgeClient: TaskManagerClient, proxy: FaultProxy?
    ) {
        self.proxy = proxy
        self.tm = tm
        self.legacyPath = legacyPath
        self.config = config
        self.store = store
        self.engine = engine
        self.bridgeClient = bridgeClient
    }

    public func startEngine() {
        let engine = self.engine
        running.withLock { t in
            guard t == nil else { return }
            t = Task {
                do { try await engine.run() } catch { print("engine stopped with error: \(error)") }
            }
        }
    }

    /// Until the objects are installed and every configured type has a mode:
    /// from then on the insert trigger claims rows of forward types.
    public func waitReady(timeout: Duration = .seconds(10)) async throws {
        let expected = Set(config.types.map(\.legacyType))
        let ok = try await eventually(timeout: timeout) {
            let modes = (try? await store.modes()) ?? [:]
            return expected.isSubset(of: Set(modes.keys))
        }
        if !ok { throw HarnessError("the bridge did not become ready") }
    }

    public func stopEngine() async {
        let t = running.withLock { t -> Task<Void, Never>? in
            defer { t = nil }
            return t
        }
        // Only a run there is: a stop asked with none running would end the next one at its start.
        guard let t else { return }
        engine.stop()
        await t.value
    }

    public func shutdown() async {
        await stopEngine()
        await bridgeClient.shutdown()
        try? store.close()
        await proxy?.stop()
        await tm.shutdown()
    }

    public func producer() throws -> LegacyProducer { try LegacyProducer(path: legacyPath) }

    /// Reads rows through a connection of its own, as an outside observer.
    public func rows(where condition: String = "1", _ arguments: StatementArguments = []) throws -> [Row] {
        let q = try observerConnection(legacyPath)
        defer { try? q.close() }
        return try q.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM task_queue WHERE \(condition) ORDER BY id", arguments: arguments)
        }
    }

    public func scalar(_ sql: String, _ arguments: StatementArguments = []) throws -> Int {
        let q = try observerConnection(legacyPath)
        defer { try? q.close() }
        return try q.read { db in try Int.fetchOne(db, sql: sql, arguments: arguments) ?? 0 }
    }

    public func scalarText(_ sql: String, _ arguments: StatementArguments = []) throws -> String? {
        let q = try observerConnection(legacyPath)
        defer { try? q.close() }
        return try q.read { db in try String.fetchOne(db, sql: sql, arguments: arguments) }
    }

    public func strings(_ sql: String, _ arguments: StatementArguments = []) throws -> [String] {
        let q = try observerConnection(legacyPath)
        defer { try? q.close() }
        return try q.read { db in try String.fetchAll(db, sql: sql, arguments: arguments) }
    }

    public func scalarInt(_ sql: String, _ arguments: StatementArguments = []) throws -> Int64? {
        let q = try observerConnection(legacyPath)
        defer { try? q.close() }
        return try q.read { db in try Int64.fetchOne(db, sql: sql, arguments: arguments) }
    }

    /// Quarantined legacy ids and their reason codes.
    public func quarantineReasons() throws -> [Int64: String] {
        let q = try observerConnection(legacyPath)
        defer { try? q.close() }
        return try q.read { db in
            Dictionary(
                try Row.fetchAll(db, sql: "SELECT legacy_id, reason FROM _taskbridge_quarantine").map {
                    ($0["legacy_id"] as Int64, $0["reason"] as String)
                }, uniquingKeysWith: { a, _ in a })
        }
    }

    /// Waits until the engine has registered a type, and returns its id.
    public func typeID(_ name: String, timeout: Duration = .seconds(10)) async throws -> Int64 {
        var id: Int64?
        _ = try await eventually(timeout: timeout) {
            id = try? await tm.client.getTaskType(name: name).id
            return id != nil
        }
        guard let id else { throw HarnessError("type \(name) was never registered") }
        return id
    }

    public static func with<T: Sendable>(
        variant: LegacyFixture = .a, types: [TypeMapping], withProxy: Bool = false,
        configure: (inout BridgeConfiguration) -> Void = { _ in },
        startEngine: Bool = true, server: (inout ServerConfiguration) -> Void = { _ in },
        _ body: (BridgeHarness) async throws -> T
    ) async throws -> T {
        let h = try await start(
            variant: variant, types: types, withProxy: withProxy, configure: configure, startEngine: startEngine,
            server: server)
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

extension BridgeHarness {
    /// Writes a bridge.conf for CLI runs against this harness: its legacy
    /// file, its TaskManager (or `url`), its type mappings, and extra
    /// `[bridge]` lines. Returns the path.
    public func writeConfig(
        name: String = "bridge-\(UUID().uuidString.prefix(6)).conf", url: String? = nil,
        bridgeLines: [String] = [#"metrics_listen = "off""#]
    ) throws -> String {
        var lines = [
            "[legacy]", "database = \(TOML.string(legacyPath))", "[taskmanager]",
            "url = \(TOML.string(url ?? config.taskManager.url))", "request_timeout_seconds = 60", "[bridge]",
        ]
        lines += bridgeLines
        for t in config.types {
            lines += [
                "[types.\(t.legacyType)]", "name = \(TOML.string(t.name))", "version = \(TOML.string(t.version))",
                "mode = \(TOML.string(t.mode.rawValue))", "dedupe = \(TOML.string(t.dedupe.rawValue))",
                "param_schema = \(TOML.value(t.paramSchema))",
                "shadow_ignore = [" + t.shadowIgnore.map(TOML.string).joined(separator: ", ") + "]",
                "shadow_timeout = \(t.shadowTimeoutSeconds)", "shadow_min_compared = \(t.shadowMinCompared)",
                "shadow_min_match = \(t.shadowMinMatch)",
            ]
        }
        let path = tm.directory.path(name)
        try lines.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// Environment for a CLI child: the harness's key, no inherited URL.
    public var cliEnvironment: [String: String] {
        var env = ProcessInfo.processInfo.environment
        env["TASKMANAGER_API_KEY"] = tm.apiKey
        env["TASKMANAGER_API_URL"] = nil
        return env
    }
}

/// JSON values as TOML inline values (for generated configs).
enum TOML {
    static func string(_ s: String) -> String { PHPJSON.encode(.string(s)) }

    static func value(_ v: JSONValue) -> String {
        switch v {
        case .null: return "\"\""
        case .bool(let b): return b ? "true" : "false"
        case .int(let i): return String(i)
        case .double(let d): return String(d)
        case .string(let s): return string(s)
        case .array(let a): return "[" + a.map(value).joined(separator: ", ") + "]"
        case .object(let m):
            return "{ " + m.map { key($0.key) + " = " + value($0.value) }.joined(separator: ", ") + " }"
        }
    }

    static func key(_ k: String) -> String {
        k.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") }) && !k.isEmpty
            ? k : string(k)
    }
}
