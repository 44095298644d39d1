import Foundation
@_exported import CutoverStages
import TaskManagerModel

/// How identical legacy rows map onto TaskManager's type+params dedupe.
public enum DedupeMode: String, Sendable, CaseIterable, Codable {
    /// Identical rows share one task (the API's own behaviour).
    case collapse
    /// A marker field with the legacy id makes every row its own task.
    case perRow = "per-row"
}

public struct TypeMapping: Sendable, Equatable {
    public var legacyType: String
    public var name: String
    public var version: String
    /// The starting mode of a type the database holds no state for yet.
    public var mode: BridgeMode
    public var dedupe: DedupeMode
    /// Params field that carries the legacy id under `per-row`.
    public var marker: String
    /// Params field that carries the queue generation's origin under
    /// `per-row` (with the legacy id, a row's identity across queues).
    public var originMarker = "_legacy_origin"
    public var paramSchema: JSONValue
    /// Result paths the shadow comparison leaves out (`fetched_at`,
    /// `items[*].view_count`): values that differ between any two runs.
    public var shadowIgnore: [String] = []
    /// A shadow copy no TaskManager worker finished within this is expired.
    public var shadowTimeoutSeconds = 3_600.0
    /// The shadow gate of `cutover TYPE forward`: the last `shadowMinCompared`
    /// comparisons matched at `shadowMinMatch` or better.
    public var shadowMinCompared = 100
    public var shadowMinMatch = 0.99

    public init(
        legacyType: String, name: String, version: String = "1.0.0", mode: BridgeMode = .off,
        dedupe: DedupeMode = .collapse, marker: String = "_legacy_id", paramSchema: JSONValue = ["type": "object"]
    ) {
        self.legacyType = legacyType
        self.name = name
        self.version = version
        self.mode = mode
        self.dedupe = dedupe
        self.marker = marker
        self.paramSchema = paramSchema
    }
}

/// Everything `bridge.conf` says, with environment overrides applied and
/// relative paths resolved against the config file's directory.
public struct BridgeConfiguration: Sendable {
    public struct Legacy: Sendable {
        public var database: String
        public var table = "task_queue"
        public var createIfMissing = false
        public var busyTimeoutMilliseconds = 5_000
        public init(database: String) { self.database = database }
    }

    public struct TaskManager: Sendable {
        /// `"embedded"` or a base URL that includes `/api`.
        public var url = "embedded"
        /// From `TASKMANAGER_API_KEY` or `.env`; never from the file.
        public var apiKey: String?
        /// One deadline for a whole request: connect, head and body.
        public var requestTimeoutSeconds = 30.0
        /// Largest encoded params sent; the PHP server stores them in a TEXT
        /// column (65,535 bytes) and answers a permanent 500 above it.
        public var maxParamsBytes = 65_535
        public var isEmbedded: Bool { url == "embedded" }
    }

    public struct Embedded: Sendable {
        public var host = "127.0.0.1"
        public var port = 8787
        public var database: String
        /// Where a generated key is kept (mode 0600) when none is configured.
        public var keyFile: String
        public init(database: String, keyFile: String) {
            self.database = database
            self.keyFile = keyFile
        }
    }

    public struct Bridge: Sendable {
        public init() {}
        public var id = "taskbridge"
        public var metricsListen: String? = "127.0.0.1:9464"
        /// The dashboard's admin token (mode 0600, generated on first use):
        /// actions on the page need it in a header; without it the page is
        /// read-only. Set by the loader (next to the legacy database by default).
        public var adminTokenFile = "taskbridge-admin.token"
        /// How often `PRAGMA data_version` is checked when no file
        /// notification came, and the longest time a mode change waits
        /// before it applies.
        public var pollIntervalSeconds = 0.1
        /// Wake on the kernel's notice that the legacy file was written
        /// (inotify); false: poll only (a file system that never notifies).
        public var fileNotifications = true
        /// Rows claimed and forwarded per write transaction.
        public var batchSize = 64
        /// Requests to TaskManager in flight at once, over all types.
        public var maxInFlight = 64
        /// Full scan of the legacy table for rows no trigger saw.
        public var reconcileIntervalSeconds = 300.0
        /// How often in-flight tasks are polled for completion.
        public var mirrorIntervalSeconds = 0.5
        /// Live parity: a small sample of forwarded rows compared this often.
        public var paritySampleIntervalSeconds = 60.0
        /// A row whose sends keep failing with a server error while other rows
        /// of its type get through is quarantined (`api_persistent_error`) once
        /// both this many attempts have failed and this much time has passed
        /// since its first failure.
        public var persistentErrorAttempts = 10
        /// Reverse types: rows inserted from claimed tasks that no legacy
        /// worker took yet, at most, per type. Leases run from the claim, so
        /// claiming far ahead of the legacy workers spends them in the queue.
        public var reversePrefetch = 20
        public var persistentErrorSeconds = 600.0
    }

    public var file: String
    /// The queue's name (`[queues.NAME]`; `default` for the single-queue
    /// form): the `queue` label of its metrics and `--queue` of commands.
    public var queue = "default"
    public var legacy: Legacy
    public var taskManager = TaskManager()
    public var embedded: Embedded
    public var bridge = Bridge()
    /// In file order.
    public var types: [TypeMapping] = []

    public func mapping(forLegacyType t: String) -> TypeMapping? { types.first { $0.legacyType == t } }

    public init(file: String, legacy: Legacy, embedded: Embedded) {
        self.file = file
        self.legacy = legacy
        self.embedded = embedded
    }
}

public struct ConfigError: Error, CustomStringConvertible, Sendable, Equatable {
    public var file: String
    public var message: String
    public var description: String { "\(file): \(message)" }
    public init(file: String, _ message: String) {
        self.file = file
        self.message = message
    }
}

/// Every queue one `bridge.conf` names, in name order (TOML tables keep no
/// order of their own): one process bridges
/// them all (`run`), and every per-queue command picks one with `--queue`.
public struct FleetConfiguration: Sendable {
    public var file: String
    public var queues: [BridgeConfiguration]
    /// The file uses `[queues.NAME]` (false: the single-queue form).
    public var named: Bool

    public init(file: String, queues: [BridgeConfiguration], named: Bool) {
        self.file = file
        self.queues = queues
        self.named = named
    }

    public var names: [String] { queues.map(\.queue) }

    /// The queue `name` picks, or the only one when `name` is nil; a usage
    /// error naming the configured queues otherwise.
    public func select(_ name: String?) throws(ConfigError) -> BridgeConfiguration {
        if let name {
            guard let q = queues.first(where: { $0.queue == name }) else {
                throw ConfigError(
                    file: file, "no queue named \"\(name)\" (configured: \(names.joined(separator: ", ")))")
            }
            return q
        }
        return try only()
    }

    public func only() throws(ConfigError) -> BridgeConfiguration {
        guard queues.count == 1 else {
            throw ConfigError(
                file: file,
                "this file names \(queues.count) queues (\(names.joined(separator: ", "))): "
                    + "choose one with --queue NAME")
        }
        return queues[0]
    }

    /// One queue when `name` is given, every queue otherwise.
    public func selectAll(_ name: String?) throws(ConfigError) -> [BridgeConfiguration] {
        name == nil ? queues : [try select(name)]
    }
}
