import Foundation
import TOMLKit
import TaskManagerModel

/// Reads and validates `bridge.conf`.
///
/// Validation is strict because a typo in a key would otherwise silently
/// fall back to a default (say, `mode = "foward"` leaving a type in `off`):
/// every unknown key, wrong type and bad identifier is an error naming the key
/// and the file.
public enum ConfigLoader {
    /// The file's only queue (the single-queue form, or one `[queues.NAME]`).
    public static func load(
        path: String, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(ConfigError)
        -> BridgeConfiguration
    {
        try loadFleet(path: path, environment: environment).only()
    }

    public static func loadFleet(
        path: String, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(ConfigError)
        -> FleetConfiguration
    {
        let absolute = URL(fileURLWithPath: path).standardizedFileURL.path
        guard let text = try? String(contentsOfFile: absolute, encoding: .utf8) else {
            throw ConfigError(file: path, "cannot read the configuration file (use --config PATH)")
        }
        return try parseFleet(text, file: absolute, environment: environment)
    }

    public static func parse(
        _ text: String, file: String, environment: [String: String] = [:]
    ) throws(ConfigError)
        -> BridgeConfiguration
    {
        try parseFleet(text, file: file, environment: environment).only()
    }

    /// Every queue the file names. `[legacy]` and `[types.*]` are the
    /// single-queue form (one queue named `default`); `[queues.NAME]` tables
    /// name several, each with the `[legacy]` keys, `bridge_id` and
    /// `[queues.NAME.types.*]`. `[taskmanager]`, `[embedded]` and `[bridge]`
    /// are shared.
    public static func parseFleet(
        _ text: String, file: String, environment: [String: String] = [:]
    ) throws(ConfigError)
        -> FleetConfiguration
    {
        let root: TOMLTable
        do {
            root = try TOMLTable(string: text)
        } catch let e as TOMLParseError {
            throw ConfigError(file: file, "TOML syntax error at line \(e.source.begin.line): \(e.description)")
        } catch {
            throw ConfigError(file: file, "TOML syntax error: \(error)")
        }
        let baseDir = URL(fileURLWithPath: file).deletingLastPathComponent().path
        func resolve(_ p: String) -> String {
            p.hasPrefix("/") ? p : URL(fileURLWithPath: baseDir).appendingPathComponent(p).standardizedFileURL.path
        }
        var r = Reader(file: file)
        try r.allowKeys(root, ["legacy", "taskmanager", "embedded", "bridge", "types", "queues"], at: "")
        let queuesT = try r.table(root, "queues", at: "")
        if queuesT != nil, root["legacy"] != nil || root["types"] != nil {
            throw ConfigError(
                file: file,
                "[queues.NAME] and the single-queue form ([legacy], [types.*]) exclude each other: move [legacy] and "
                    + "[types.*] into a [queues.NAME] table")
        }
        // Per queue: its [legacy] keys and its types, parsed the same way
        // for both forms.
        struct QueueSection {
            var name: String
            var at: String
            var legacy: TOMLTable
            var types: TOMLTable?
            var bridgeID: String?
        }
        var sections: [QueueSection] = []
        if let queuesT {
            guard !queuesT.keys.isEmpty else { throw ConfigError(file: file, "[queues] names no queue") }
            for name in queuesT.keys {
                let at = "queues.\(name)"
                guard isPlainIdentifier(name) else {
                    throw ConfigError(
                        file: file, "[\(at)]: a queue name is letters, digits and underscores (it is a metric label)")
                }
                guard let q = queuesT[name]?.table else { throw ConfigError(file: file, "[\(at)] must be a table") }
                try r.allowKeys(
                    q, Self.legacyKeys + ["types", "bridge_id"], at: at)
                guard q["database"] != nil else { throw ConfigError(file: file, "[\(at)] database is required") }
                sections.append(
                    QueueSection(
                        name: name, at: at, legacy: q, types: try r.table(q, "types", at: at),
                        bridgeID: try r.string(q, "bridge_id", at: at)))
            }
        } else {
            let legacyT = try r.table(root, "legacy", at: "") ?? TOMLTable()
            try r.allowKeys(legacyT, Self.legacyKeys, at: "legacy")
            sections.append(
                QueueSection(
                    name: "default", at: "legacy", legacy: legacyT, types: try r.table(root, "types", at: ""),
                    bridgeID: nil))
        }
        let legacy = try parseLegacy(sections[0].legacy, at: sections[0].at, resolve: resolve, r: r)

        let embT = try r.table(root, "embedded", at: "") ?? TOMLTable()
        try r.allowKeys(embT, ["listen", "database", "key_file"], at: "embedded")
        let embDB = resolve(try r.string(embT, "database", at: "embedded") ?? "data/taskmanager.db")
        var embedded = BridgeConfiguration.Embedded(
            database: embDB,
            keyFile: resolve(
                try r.string(embT, "key_file", at: "embedded")
                    ?? URL(fileURLWithPath: embDB).deletingLastPathComponent().appendingPathComponent("taskmanager.key")
                    .path))
        if let listen = try r.string(embT, "listen", at: "embedded") {
            (embedded.host, embedded.port) = try hostPort(listen, key: "[embedded] listen", file: file)
        }

        var config = BridgeConfiguration(file: file, legacy: legacy, embedded: embedded)

        let tmT = try r.table(root, "taskmanager", at: "") ?? TOMLTable()
        if tmT["api_key"] != nil {
            throw ConfigError(
                file: file, "[taskmanager] api_key must not live in the file: set TASKMANAGER_API_KEY or put it in .env"
            )
        }
        try r.allowKeys(tmT, ["url", "request_timeout_seconds", "max_params_bytes"], at: "taskmanager")
        config.taskManager.url = try r.string(tmT, "url", at: "taskmanager") ?? "embedded"
        if let t = try r.double(tmT, "request_timeout_seconds", at: "taskmanager") {
            guard t > 0, t <= 3600 else {
                throw ConfigError(file: file, "[taskmanager] request_timeout_seconds must be above 0 and at most 3600")
            }
            config.taskManager.requestTimeoutSeconds = t
        }
        if let v = try r.int(tmT, "max_params_bytes", at: "taskmanager") {
            guard (2...1_048_576).contains(v) else {
                throw ConfigError(file: file, "[taskmanager] max_params_bytes must be 2..1048576")
            }
            config.taskManager.maxParamsBytes = v
        }

        let brT = try r.table(root, "bridge", at: "") ?? TOMLTable()
        try r.allowKeys(
            brT,
            [
                "id", "metrics_listen", "poll_interval_ms", "batch_size", "max_in_flight",
                "reconcile_interval_seconds", "mirror_interval_ms", "parity_sample_interval_seconds",
                "persistent_error_attempts", "persistent_error_seconds", "admin_token_file", "reverse_prefetch",
                "file_notifications",
            ], at: "bridge")
        if let v = try r.bool(brT, "file_notifications", at: "bridge") { config.bridge.fileNotifications = v }
        config.bridge.adminTokenFile = resolve(
            try r.string(brT, "admin_token_file", at: "bridge")
                ?? URL(fileURLWithPath: legacy.database).deletingLastPathComponent()
                .appendingPathComponent("taskbridge-admin.token").path)
        if let id = try r.string(brT, "id", at: "bridge") {
            guard !id.isEmpty, id.count <= 255 else {
                throw ConfigError(file: file, "[bridge] id must be 1 to 255 characters")
            }
            config.bridge.id = id
        }
        if let m = try r.string(brT, "metrics_listen", at: "bridge") {
            if m.isEmpty || m == "off" {
                config.bridge.metricsListen = nil
            } else {
                _ = try hostPort(m, key: "[bridge] metrics_listen", file: file)
                config.bridge.metricsListen = m
            }
        }
        if let v = try r.int(brT, "poll_interval_ms", at: "bridge") {
            guard (1...60_000).contains(v) else {
                throw ConfigError(file: file, "[bridge] poll_interval_ms must be 1..60000")
            }
            config.bridge.pollIntervalSeconds = Double(v) / 1000
        }
        if let v = try r.int(brT, "batch_size", at: "bridge") {
            guard (1...1000).contains(v) else { throw ConfigError(file: file, "[bridge] batch_size must be 1..1000") }
            config.bridge.batchSize = v
        }
        if let v = try r.int(brT, "max_in_flight", at: "bridge") {
            guard (1...4096).contains(v) else {
                throw ConfigError(file: file, "[bridge] max_in_flight must be 1..4096")
            }
            config.bridge.maxInFlight = v
        }
        if let v = try r.double(brT, "reconcile_interval_seconds", at: "bridge") {
            guard v >= 1 else {
                throw ConfigError(file: file, "[bridge] reconcile_interval_seconds must be at least 1")
            }
            config.bridge.reconcileIntervalSeconds = v
        }
        if let v = try r.int(brT, "mirror_interval_ms", at: "bridge") {
            guard (10...600_000).contains(v) else {
                throw ConfigError(file: file, "[bridge] mirror_interval_ms must be 10..600000")
            }
            config.bridge.mirrorIntervalSeconds = Double(v) / 1000
        }

        if let v = try r.int(brT, "reverse_prefetch", at: "bridge") {
            guard (1...10_000).contains(v) else {
                throw ConfigError(file: file, "[bridge] reverse_prefetch must be 1..10000")
            }
            config.bridge.reversePrefetch = v
        }
        if let v = try r.int(brT, "persistent_error_attempts", at: "bridge") {
            guard v >= 1 else { throw ConfigError(file: file, "[bridge] persistent_error_attempts must be at least 1") }
            config.bridge.persistentErrorAttempts = v
        }
        if let v = try r.double(brT, "persistent_error_seconds", at: "bridge") {
            guard v >= 0 else { throw ConfigError(file: file, "[bridge] persistent_error_seconds must be at least 0") }
            config.bridge.persistentErrorSeconds = v
        }
        if let v = try r.double(brT, "parity_sample_interval_seconds", at: "bridge") {
            guard v >= 1 else {
                throw ConfigError(file: file, "[bridge] parity_sample_interval_seconds must be at least 1")
            }
            config.bridge.paritySampleIntervalSeconds = v
        }

        // Environment: the process environment wins over .env, which wins over the file.
        let dotEnv = DotEnvFile.load(paths: [URL(fileURLWithPath: baseDir).appendingPathComponent(".env").path, ".env"])
        if let url = environment["TASKMANAGER_API_URL"] ?? dotEnv["TASKMANAGER_API_URL"], !url.isEmpty {
            config.taskManager.url = url
        }
        config.taskManager.apiKey = environment["TASKMANAGER_API_KEY"] ?? dotEnv["TASKMANAGER_API_KEY"]
        if config.taskManager.apiKey?.isEmpty == true { config.taskManager.apiKey = nil }
        if !config.taskManager.isEmbedded {
            guard let u = URL(string: config.taskManager.url), u.scheme == "http" || u.scheme == "https", u.host != nil
            else {
                throw ConfigError(
                    file: file,
                    "[taskmanager] url must be \"embedded\" or an http(s) URL, got \"\(config.taskManager.url)\"")
            }
            guard u.path.split(separator: "/").contains("api") else {
                throw ConfigError(
                    file: file,
                    """
                    [taskmanager] url (or TASKMANAGER_API_URL) must include the /api base path, e.g. \
                    \(config.taskManager.url)/api
                    """
                )
            }
        }
        var queues: [BridgeConfiguration] = []
        for section in sections {
            var q = config
            q.queue = section.name
            q.legacy = try parseLegacy(section.legacy, at: section.at, resolve: resolve, r: r)
            if let id = section.bridgeID {
                guard !id.isEmpty, id.count <= 255 else {
                    throw ConfigError(file: file, "[\(section.at)] bridge_id must be 1 to 255 characters")
                }
                q.bridge.id = id
            }
            let prefix = sections.count == 1 && queuesT == nil ? "types" : "\(section.at).types"
            q.types = try section.types.map { t throws(ConfigError) in try parseTypes(t, at: prefix, r: r) } ?? []
            if let other = queues.first(where: { $0.legacy.database == q.legacy.database }) {
                throw ConfigError(
                    file: file,
                    "[\(section.at)] database \(q.legacy.database) is already the database of queue \(other.queue)")
            }
            queues.append(q)
        }
        return FleetConfiguration(file: file, queues: queues, named: queuesT != nil)
    }

    static let legacyKeys = ["database", "table", "create_if_missing", "busy_timeout_ms"]

    static func parseLegacy(
        _ legacyT: TOMLTable, at: String, resolve: (String) -> String, r: Reader
    ) throws(ConfigError) -> BridgeConfiguration.Legacy {
        let file = r.file
        var legacy = BridgeConfiguration.Legacy(
            database: resolve(try r.string(legacyT, "database", at: at) ?? "data/worker_queue.db"))
        if let t = try r.string(legacyT, "table", at: at) {
            guard isPlainIdentifier(t) else {
                throw ConfigError(
                    file: file,
                    """
                    [\(at)] table = \"\(t)\" is not a plain SQL identifier (letters, digits, underscore; not starting \
                    with a digit)
                    """
                )
            }
            guard !t.lowercased().hasPrefix("_taskbridge") else {
                throw ConfigError(file: file, "[\(at)] table = \"\(t)\" uses the reserved _taskbridge prefix")
            }
            legacy.table = t
        }
        legacy.createIfMissing = try r.bool(legacyT, "create_if_missing", at: at) ?? false
        if let b = try r.int(legacyT, "busy_timeout_ms", at: at) {
            guard b >= 5_000 else {
                throw ConfigError(
                    file: file, "[\(at)] busy_timeout_ms must be at least 5000 (legacy workers use 5000)")
            }
            legacy.busyTimeoutMilliseconds = b
        }
        return legacy
    }

    static func parseTypes(_ typesT: TOMLTable, at prefix: String, r: Reader) throws(ConfigError) -> [TypeMapping] {
        let file = r.file
        var config = (types: [TypeMapping](), unused: 0)
        do {
            for legacyType in typesT.keys {
                let at = "\(prefix).\(legacyType)"
                guard let t = typesT[legacyType]?.table else {
                    throw ConfigError(file: file, "[\(at)] must be a table")
                }
                try r.allowKeys(
                    t,
                    [
                        "name", "version", "mode", "dedupe", "marker", "origin_marker", "param_schema", "shadow_ignore",
                        "shadow_timeout", "shadow_min_compared", "shadow_min_match",
                    ], at: at)
                guard let name = try r.string(t, "name", at: at), !name.trimmingCharacters(in: .whitespaces).isEmpty
                else {
                    throw ConfigError(file: file, "[\(at)] name is required (the TaskManager task type name)")
                }
                var m = TypeMapping(legacyType: legacyType, name: name)
                m.version = try r.string(t, "version", at: at) ?? "1.0.0"
                if let mode = try r.string(t, "mode", at: at) {
                    guard let v = BridgeMode(rawValue: mode) else {
                        throw ConfigError(
                            file: file,
                            "[\(at)] mode = \"\(mode)\" is not one of "
                                + BridgeMode.allCases.map(\.rawValue).joined(separator: ", "))
                    }
                    m.mode = v
                }
                if let d = try r.string(t, "dedupe", at: at) {
                    guard let v = DedupeMode(rawValue: d) else {
                        throw ConfigError(file: file, "[\(at)] dedupe = \"\(d)\" is not one of collapse, per-row")
                    }
                    m.dedupe = v
                }
                if let marker = try r.string(t, "marker", at: at) {
                    guard !marker.isEmpty else { throw ConfigError(file: file, "[\(at)] marker must not be empty") }
                    m.marker = marker
                }
                if let origin = try r.string(t, "origin_marker", at: at) {
                    guard !origin.isEmpty, origin != m.marker else {
                        throw ConfigError(file: file, "[\(at)] origin_marker must be non-empty and differ from marker")
                    }
                    m.originMarker = origin
                }
                if let schema = t["param_schema"] {
                    let json = toJSON(schema)
                    guard PHPJSON.isAssociative(json), json["type"] != nil else {
                        throw ConfigError(file: file, "[\(at)] param_schema must be a table with a \"type\" key")
                    }
                    m.paramSchema = json
                }
                try parseShadow(t, into: &m, at: at, r: r)
                if config.types.contains(where: { $0.name == m.name }) {
                    throw ConfigError(file: file, "[\(at)] name \"\(m.name)\" is already mapped by another legacy type")
                }
                config.types.append(m)
            }
        }

        return config.types
    }

    static func parseShadow(_ t: TOMLTable, into m: inout TypeMapping, at: String, r: Reader) throws(ConfigError) {
        let file = r.file
        if let v = t["shadow_ignore"] {
            guard let a = v.array, let paths = Optional(a.compactMap(\.string)), paths.count == a.count,
                paths.allSatisfy({ !$0.isEmpty })
            else {
                throw ConfigError(file: file, "[\(at)] shadow_ignore must be a list of result paths (strings)")
            }
            m.shadowIgnore = paths
        }
        if let v = t["shadow_timeout"] {
            guard let seconds = v.int.map(Double.init) ?? v.double ?? v.string.flatMap(parseDuration), seconds > 0
            else {
                throw ConfigError(
                    file: file, "[\(at)] shadow_timeout must be seconds or a duration such as \"90s\", \"30m\", \"1h\"")
            }
            m.shadowTimeoutSeconds = seconds
        }
        if let n = try r.int(t, "shadow_min_compared", at: at) {
            guard n >= 1 else { throw ConfigError(file: file, "[\(at)] shadow_min_compared must be at least 1") }
            m.shadowMinCompared = n
        }
        if let x = try r.double(t, "shadow_min_match", at: at) {
            guard x > 0 && x <= 1 else {
                throw ConfigError(file: file, "[\(at)] shadow_min_match must be above 0 and at most 1 (0.99 is 99 %)")
            }
            m.shadowMinMatch = x
        }
    }

    /// `90s`, `30m`, `1h`, `1.5h`, or plain seconds as text.
    public static func parseDuration(_ s: String) -> Double? {
        let t = s.trimmingCharacters(in: .whitespaces)
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3_600)]
        for (u, f) in units where t.hasSuffix(u) {
            if let v = Double(t.dropLast(u.count)) { return v * f }
        }
        return Double(t)
    }

    public static func isPlainIdentifier(_ s: String) -> Bool {
        guard let f = s.unicodeScalars.first, f == "_" || (f.isASCII && f.properties.isAlphabetic) else { return false }
        return s.unicodeScalars.allSatisfy {
            $0 == "_" || ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0)))
        }
            && s.count <= 64
    }

    static func hostPort(_ s: String, key: String, file: String) throws(ConfigError) -> (String, Int) {
        guard let hp = parseHostPort(s) else { throw ConfigError(file: file, "\(key) = \"\(s)\" must be HOST:PORT") }
        return hp
    }

    /// `HOST:PORT` (listen addresses in the file and on the command line).
    public static func parseHostPort(_ s: String) -> (host: String, port: Int)? {
        guard let colon = s.lastIndex(of: ":"), let port = Int(s[s.index(after: colon)...]), (0...65535).contains(port)
        else { return nil }
        return (String(s[..<colon]), port)
    }

    static func toJSON(_ v: any TOMLValueConvertible) -> JSONValue {
        switch v.type {
        case .table:
            let t = v.table!
            return .object(t.keys.map { JSONMember($0, toJSON(t[$0]!)) })
        case .array:
            return .array(v.array!.map { toJSON($0) })
        case .string: return .string(v.string!)
        case .int: return .int(Int64(v.int!))
        case .double: return .double(v.double!)
        case .bool: return .bool(v.bool!)
        default: return .string(v.debugDescription)
        }
    }

    /// Typed access that names the key and the file on a mismatch.
    struct Reader {
        let file: String
        func name(_ key: String, _ at: String) -> String { at.isEmpty ? key : "[\(at)] \(key)" }

        func allowKeys(_ t: TOMLTable, _ allowed: [String], at: String) throws(ConfigError) {
            for k in t.keys where !allowed.contains(k) {
                throw ConfigError(
                    file: file, "unknown key \(name(k, at)) (allowed: \(allowed.joined(separator: ", ")))")
            }
        }
        func table(_ t: TOMLTable, _ key: String, at: String) throws(ConfigError) -> TOMLTable? {
            guard let v = t[key] else { return nil }
            guard let tt = v.table else { throw ConfigError(file: file, "\(name(key, at)) must be a table") }
            return tt
        }
        func string(_ t: TOMLTable, _ key: String, at: String) throws(ConfigError) -> String? {
            guard let v = t[key] else { return nil }
            guard let s = v.string else {
                throw ConfigError(file: file, "\(name(key, at)) must be a string, got \(v.type)")
            }
            return s
        }
        func bool(_ t: TOMLTable, _ key: String, at: String) throws(ConfigError) -> Bool? {
            guard let v = t[key] else { return nil }
            guard let b = v.bool else {
                throw ConfigError(file: file, "\(name(key, at)) must be true or false, got \(v.type)")
            }
            return b
        }
        func int(_ t: TOMLTable, _ key: String, at: String) throws(ConfigError) -> Int? {
            guard let v = t[key] else { return nil }
            guard let i = v.int else {
                throw ConfigError(file: file, "\(name(key, at)) must be an integer, got \(v.type)")
            }
            return i
        }
        func double(_ t: TOMLTable, _ key: String, at: String) throws(ConfigError) -> Double? {
            guard let v = t[key] else { return nil }
            if let d = v.double { return d }
            if let i = v.int { return Double(i) }
            throw ConfigError(file: file, "\(name(key, at)) must be a number, got \(v.type)")
        }
    }
}

/// `.env` files, read the way PrismQ's ConfigLoad does: first file wins per key.
enum DotEnvFile {
    static func load(paths: [String]) -> [String: String] {
        var out: [String: String] = [:]
        for p in paths {
            for (k, v) in DotEnv.load(path: p) ?? [:] where out[k] == nil { out[k] = v }
        }
        return out
    }
}
