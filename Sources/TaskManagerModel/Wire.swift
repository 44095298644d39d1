import Foundation

/// TaskManager task status (`tasks.status` ENUM).
public enum TaskStatus: String, Sendable, CaseIterable, Codable {
    case pending, claimed, completed, failed

    public var isTerminal: Bool { self == .completed || self == .failed }
}

/// Claim policies as PrismQ workers send them (spec section 5.6).
public enum ClaimPolicy: String, Sendable, CaseIterable {
    case fifo = "FIFO", lifo = "LIFO", priority = "PRIORITY"

    public var sortBy: String { self == .priority ? "priority" : "created_at" }
    public var sortOrder: String { self == .fifo ? "ASC" : "DESC" }
}

/// Envelope shapes, as the PHP server writes them.
public enum Envelope {
    /// `{"success":true,"message":"Success","data":...,"timestamp":N}`; the
    /// handler-specific message lives in `data.message`.
    public static func success(_ data: JSONValue, timestamp: Int64 = Envelope.now()) -> JSONValue {
        .object([
            JSONMember("success", true), JSONMember("message", "Success"), JSONMember("data", data),
            JSONMember("timestamp", .int(timestamp)),
        ])
    }

    /// Router and handler errors; `details` only for request validation.
    public static func error(
        _ message: String, details: [String]? = nil, timestamp: Int64 = Envelope.now()
    ) -> JSONValue {
        var m = [
            JSONMember("success", false), JSONMember("error", .string(message)),
            JSONMember("timestamp", .int(timestamp)),
        ]
        if let details { m.append(JSONMember("details", .array(details.map { .string($0) }))) }
        return .object(m)
    }

    /// Middleware and auth errors: no `success`, ISO-8601 `timestamp`, extra
    /// fields (429) between `message` and `timestamp`.
    public static func middlewareError(
        _ error: String, message: String, extra: [JSONMember] = [], date: Date = Date()
    ) -> JSONValue {
        var m = [JSONMember("error", .string(error)), JSONMember("message", .string(message))]
        m.append(contentsOf: extra)
        m.append(JSONMember("timestamp", .string(isoTimestamp(date))))
        return .object(m)
    }

    public static func now() -> Int64 { Int64(Date().timeIntervalSince1970) }

    /// PHP `date('c')` in UTC: `2026-11-29T13:28:38+00:00`.
    public static func isoTimestamp(_ date: Date) -> String {
        MySQLTime.format(date, separator: "T") + "+00:00"
    }
}

/// `YYYY-MM-DD HH:MM:SS` text, the TaskManager's timestamp format (UTC here).
public enum MySQLTime {
    public static func format(_ date: Date, separator: Character = " ") -> String {
        let t = time_t(floor(date.timeIntervalSince1970))
        var tm = tm()
        gmtime_r([t], &tm)
        func p2(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return
            "\(tm.tm_year + 1900)-\(p2(tm.tm_mon + 1))-\(p2(tm.tm_mday))\(separator)\(p2(tm.tm_hour)):"
            + "\(p2(tm.tm_min)):\(p2(tm.tm_sec))"
    }
}

// MARK: - Typed payloads (the `data` of each route)

public struct TaskTypeInfo: Sendable, Equatable {
    public var id: Int64
    public var name: String
    public var version: String
    public var paramSchema: JSONValue?
    public var isActive: Bool
    public var createdAt: String?
    public var updatedAt: String?
    public var usageCount: Int64?
    public var lastUsedAt: String?

    public init?(json: JSONValue) {
        guard let id = json["id"]?.intValue, let name = json["name"]?.stringValue else { return nil }
        self.id = id
        self.name = name
        self.version = json["version"]?.stringValue ?? ""
        self.paramSchema = json["param_schema"]
        if let a = json["is_active"] {
            self.isActive = a.boolValue ?? (a.intValue.map { $0 != 0 } ?? true)
        } else {
            self.isActive = true
        }
        self.createdAt = json["created_at"]?.stringValue
        self.updatedAt = json["updated_at"]?.stringValue
        self.usageCount = json["usage_count"]?.intValue
        self.lastUsedAt = json["last_used_at"]?.stringValue
    }
}

public struct RegisterResult: Sendable, Equatable {
    public var id: Int64
    public var name: String
    public var version: String
    public var created: Bool

    public init?(json: JSONValue) {
        guard let id = json["id"]?.intValue else { return nil }
        self.id = id
        self.name = json["name"]?.stringValue ?? ""
        self.version = json["version"]?.stringValue ?? ""
        self.created = json["created"]?.boolValue ?? false
    }
}

public struct CreateResult: Sendable, Equatable {
    public var id: Int64
    public var status: String
    /// `deduplicated` on the wire (OpenAPI and some clients say `duplicate`).
    public var deduplicated: Bool
    public var dedupeKey: String?
    public var message: String?

    public init?(json: JSONValue) {
        guard let id = json["id"]?.intValue else { return nil }
        self.id = id
        self.status = json["status"]?.stringValue ?? "pending"
        self.deduplicated = json["deduplicated"]?.boolValue ?? json["duplicate"]?.boolValue ?? false
        self.dedupeKey = json["dedupe_key"]?.stringValue
        self.message = json["message"]?.stringValue
    }
}

public struct ClaimedTask: Sendable, Equatable {
    public var id: Int64
    public var type: String
    public var params: JSONValue
    public var attempts: Int64
    public var priority: Int64

    public init?(json: JSONValue) {
        guard let id = json["id"]?.intValue else { return nil }
        self.id = id
        self.type = json["type"]?.stringValue ?? ""
        self.params = json["params"] ?? .null
        self.attempts = json["attempts"]?.intValue ?? 0
        self.priority = json["priority"]?.intValue ?? 0
    }
}

public struct CompleteResult: Sendable, Equatable {
    public var id: Int64
    /// `completed`, `failed` or `pending (retry)`.
    public var status: String
    public init?(json: JSONValue) {
        guard let id = json["id"]?.intValue else { return nil }
        self.id = id
        self.status = json["status"]?.stringValue ?? ""
    }
}

public struct ProgressResult: Sendable, Equatable {
    public var id: Int64
    public var progress: Int64
    public init?(json: JSONValue) {
        guard let id = json["id"]?.intValue else { return nil }
        self.id = id
        self.progress = json["progress"]?.intValue ?? 0
    }
}

/// A task as `GET /tasks/{id}` (full) or `GET /tasks` (summary, no params or
/// result) returns it.
public struct TaskInfo: Sendable, Equatable {
    public var id: Int64
    public var type: String
    public var status: TaskStatus?
    public var rawStatus: String
    public var params: JSONValue?
    public var result: JSONValue?
    public var errorMessage: String?
    public var priority: Int64
    public var progress: Int64
    public var attempts: Int64
    public var claimedBy: String?
    public var claimedAt: String?
    public var completedAt: String?
    public var createdAt: String?

    public init?(json: JSONValue) {
        guard let id = json["id"]?.intValue else { return nil }
        self.id = id
        self.type = json["type"]?.stringValue ?? ""
        self.rawStatus = json["status"]?.stringValue ?? ""
        self.status = TaskStatus(rawValue: rawStatus)
        self.params = json["params"]
        // Spelled out: with JSONValue being nil-literal expressible, a
        // `flatMap { $0.isNull ? nil : $0 }` would yield `.some(.null)`.
        if let r = json["result"], !r.isNull { self.result = r } else { self.result = Optional<JSONValue>.none }
        self.errorMessage = json["error_message"]?.stringValue
        self.priority = json["priority"]?.intValue ?? 0
        self.progress = json["progress"]?.intValue ?? 0
        self.attempts = json["attempts"]?.intValue ?? 0
        self.claimedBy = json["claimed_by"]?.stringValue
        self.claimedAt = json["claimed_at"]?.stringValue
        self.completedAt = json["completed_at"]?.stringValue
        self.createdAt = json["created_at"]?.stringValue
    }
}
