import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import TaskManagerModel

/// Request context that also carries the peer address (rate limiting key).
public struct TaskManagerRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteIP: String?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteIP = source.channel.remoteAddress?.ipAddress
    }
}

/// The whole PHP front controller in one responder: the pipeline order
/// (CORS, OPTIONS, openapi, size, rate limit, auth, routing) is part of the
/// observable behaviour, so it is written out in sequence rather than spread
/// over a middleware stack.
public struct TaskManagerResponder: HTTPResponder {
    public typealias Context = TaskManagerRequestContext

    let store: TaskStore
    let config: ServerConfiguration
    let rateLimiter: RateLimiter?
    let logger: Logger

    public init(store: TaskStore, configuration: ServerConfiguration, logger: Logger) {
        self.store = store
        self.config = configuration
        self.rateLimiter = configuration.rateLimit.map(RateLimiter.init)
        self.logger = logger
    }

    struct Reply {
        var status: HTTPResponse.Status
        var body: JSONValue?
        var html = false
        var extraHeaders: [(HTTPField.Name, String)] = []
        /// Pre-encoded body, for answers that embed stored JSON verbatim.
        var raw: String? = nil

        static func ok(_ data: JSONValue) -> Reply { Reply(status: .ok, body: Envelope.success(data)) }
        static func fail(_ code: Int, _ message: String, details: [String]? = nil) -> Reply {
            Reply(status: .init(code: code), body: Envelope.error(message, details: details))
        }
        static func middleware(_ code: Int, _ error: String, _ message: String, extra: [JSONMember] = []) -> Reply {
            Reply(
                status: .init(code: code), body: Envelope.middlewareError(error, message: message, extra: extra),
                html: true)
        }
    }

    static let apiKeyHeader = HTTPField.Name("X-API-Key")!

    /// `parseRequestPath()`: drop the query, remove every `/api`, trim
    /// trailing slashes; no percent-decoding.
    static func normalise(_ rawPath: String) -> String {
        var path = rawPath
        if let q = path.firstIndex(of: "?") { path = String(path[..<q]) }
        path = path.replacingOccurrences(of: "/api", with: "")
        while path.hasSuffix("/") { path.removeLast() }
        return path.isEmpty ? "/" : path
    }

    public func respond(to request: Request, context: Context) async throws -> Response {
        var headers = HTTPFields()
        headers[.cacheControl] = "no-store, no-cache, must-revalidate, max-age=0"
        applyCORS(request, &headers)
        if config.enableSecurityHeaders {
            headers[.init("X-Frame-Options")!] = "DENY"
            headers[.init("X-Content-Type-Options")!] = "nosniff"
            headers[.init("X-XSS-Protection")!] = "1; mode=block"
            headers[.init("Referrer-Policy")!] = "strict-origin-when-cross-origin"
            headers[.init("Content-Security-Policy")!] = "default-src 'none'; frame-ancestors 'none'"
            headers[.init("Permissions-Policy")!] = "geolocation=(), microphone=(), camera=()"
        }
        if request.method == .options {
            return Response(status: .ok, headers: headers)
        }
        let path = Self.normalise(request.uri.path)
        if path == "/openapi.json" {
            headers[.contentType] = "application/json"
            return Response(
                status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: OpenAPIDocument.json)))
        }

        var request = request
        let reply = await pipeline(&request, path: path, context: context, headers: &headers)
        let text = reply.raw ?? reply.body.map(PHPJSON.encode) ?? ""
        headers[.contentType] = reply.html ? "text/html; charset=UTF-8" : "application/json"
        for (k, v) in reply.extraHeaders { headers[k] = v }
        return Response(status: reply.status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    private func applyCORS(_ request: Request, _ headers: inout HTTPFields) {
        if let allowed = config.corsAllowedOrigins, !allowed.isEmpty, allowed != ["*"] {
            if let origin = request.headers[.origin], allowed.contains(origin) {
                headers[.accessControlAllowOrigin] = origin
                headers[.vary] = "Origin"
            }
        } else {
            headers[.accessControlAllowOrigin] = "*"
        }
        headers[.accessControlAllowMethods] = "GET, POST, PUT, DELETE, OPTIONS"
        headers[.accessControlAllowHeaders] = "Content-Type, Authorization, X-API-Key"
    }

    private func clientIP(_ request: Request, _ context: Context) -> String {
        for name in ["CF-Connecting-IP", "X-Forwarded-For", "X-Real-IP"] {
            if let v = request.headers[HTTPField.Name(name)!] {
                let first = v.split(separator: ",").first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
                if !first.isEmpty, first.allSatisfy({ $0.isHexDigit || $0 == "." || $0 == ":" }) { return first }
            }
        }
        return context.remoteIP ?? "unknown"
    }

    private func pipeline(
        _ request: inout Request, path: String, context: Context, headers: inout HTTPFields
    ) async -> Reply {
        // Size: the declared length first, as PHP reads CONTENT_LENGTH.
        let tooLarge = Reply.middleware(
            413, "Request Too Large",
            "Request body exceeds maximum allowed size of \(Self.megabytes(config.maxRequestSize)) MB")
        if let declared = request.headers[.contentLength].flatMap(Int.init), declared > config.maxRequestSize {
            return tooLarge
        }
        if let limiter = rateLimiter {
            let d = limiter.check(
                key: clientIP(request, context) + ":" + path, now: config.clock.now().timeIntervalSince1970)
            headers[.init("X-RateLimit-Limit")!] = String(limiter.limit.maxRequests)
            headers[.init("X-RateLimit-Remaining")!] = String(d.remaining)
            headers[.init("X-RateLimit-Reset")!] = String(d.reset)
            if !d.allowed {
                var r = Reply.middleware(
                    429, "Too Many Requests", "Rate limit exceeded. Please try again in \(d.retryAfter) seconds.",
                    extra: [
                        JSONMember("retry_after", .int(Int64(d.retryAfter))),
                        JSONMember("limit", .int(Int64(limiter.limit.maxRequests))),
                        JSONMember("window", .int(Int64(limiter.limit.window))),
                    ])
                r.extraHeaders.append((.retryAfter, String(d.retryAfter)))
                return r
            }
        }
        if path != "/health" {
            let given = request.headers[Self.apiKeyHeader] ?? ""
            if given.isEmpty || !APIKey.matches(given, config.apiKey) {
                return .middleware(
                    401, "Unauthorized", "Invalid or missing API key. Include X-API-Key header with your request.")
            }
        }

        // The route is looked up before the body is read, as the PHP router
        // does: `DELETE /tasks/1` with no body is a 404, not a JSON error.
        guard let route = Route(request.method, path: path) else { return .fail(404, "Endpoint not found") }
        var body: JSONValue = .object([])
        if request.method != .get {
            let bytes: ByteBuffer
            do {
                bytes = try await request.collectBody(upTo: config.maxRequestSize)
            } catch {
                return tooLarge
            }
            do {
                body = try JSONParser.parse(bytes.readableBytesView)
            } catch  where error.kind == .numberOutOfRange {
                return .fail(400, "Invalid JSON in request body: number out of range")
            } catch {
                return .fail(400, "Invalid JSON in request body")
            }
        }
        if let field = Self.identifierWithNUL(path: path, body: body, query: request.uri.queryParameters) {
            return .fail(400, "Invalid \(field): contains a NUL character")
        }
        do {
            return try await handle(route, body: body, query: request.uri.queryParameters)
        } catch let e as TaskStore.OwnershipError {
            switch e {
            case .notFound: return .fail(404, "Task not found")
            case .notClaimed: return .fail(400, "Task is not in claimed state")
            case .otherWorker: return .fail(403, "Task is claimed by another worker")
            }
        } catch {
            // The PHP server leaks raw exception text here; the message of a
            // storage error is the most a client gets from this one.
            logger.error("request failed", metadata: ["path": .string(path), "error": .string("\(error)")])
            return .fail(500, "Internal server error")
        }
    }

    /// Fields that name things (types, workers, patterns): a NUL in one would be
    /// cut by SQLite's text binding and name something else (`probe.d\0evil`
    /// resolved to `probe.d`), so it is refused. Free text (errors, results,
    /// messages) keeps its NUL bytes (`SQLiteText`).
    static let identifierFields = ["name", "type", "version", "worker_id", "type_pattern", "sort_by", "sort_order"]

    static func identifierWithNUL(path: String, body: JSONValue, query: Parameters) -> String? {
        if path.removingPercentEncoding?.contains("\u{0}") ?? false || path.contains("\u{0}") { return "path" }
        for field in identifierFields {
            if let s = body[field]?.stringValue, s.utf8.contains(0) { return field }
            if let q = query[Substring(field)],
                q.utf8.contains(0) || (q.removingPercentEncoding?.utf8.contains(0) ?? false)
            {
                return field
            }
        }
        return nil
    }

    static func megabytes(_ bytes: Int) -> String {
        let mb = Double(bytes) / 1_048_576
        return mb == mb.rounded() ? String(Int(mb)) : String(format: "%.2f", mb)
    }

    /// The seeded `api_endpoints` table.
    enum Route {
        case health, registerType, getType(String), listTypes
        case createTask, claim, complete(String), progress(String), getTask(String), listTasks

        init?(_ method: HTTPRequest.Method, path: String) {
            let parts = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst().map(String.init)
            switch (method, parts.count, parts.first) {
            case (.get, 1, "health"): self = .health
            case (.post, 2, "task-types") where parts[1] == "register": self = .registerType
            case (.get, 2, "task-types"): self = .getType(parts[1])
            case (.get, 1, "task-types"): self = .listTypes
            case (.post, 1, "tasks"): self = .createTask
            case (.post, 2, "tasks") where parts[1] == "claim": self = .claim
            case (.post, 3, "tasks") where parts[2] == "complete": self = .complete(parts[1])
            case (.post, 3, "tasks") where parts[2] == "progress": self = .progress(parts[1])
            case (.get, 2, "tasks"): self = .getTask(parts[1])
            case (.get, 1, "tasks"): self = .listTasks
            default: return nil
            }
        }
    }

    private func handle(
        _ route: Route, body: JSONValue, query: FlatDictionary<Substring, Substring>
    ) async throws -> Reply {
        switch route {
        case .health:
            try await store.healthCheck()
            let now = Envelope.now()
            return .ok(["status": "healthy", "timestamp": .int(now), "database": "connected"])
        case .registerType: return try await registerType(body)
        case .getType(let name): return try await getType(name)
        case .listTypes: return try await listTypes(query)
        case .createTask: return try await createTask(body)
        case .claim: return try await claim(body)
        case .complete(let id): return try await complete(id: id, body)
        case .progress(let id): return try await progress(id: id, body)
        case .getTask(let id): return try await getTask(id)
        case .listTasks: return try await listTasks(query)
        }
    }

    // MARK: - Handlers

    private func registerType(_ body: JSONValue) async throws -> Reply {
        for field in ["name", "version", "param_schema"] {
            let v = body[field]
            if v == nil || v == .null || v == .string("") { return .fail(400, "Missing required field: \(field)") }
        }
        guard let rawName = body["name"]?.phpScalarString, let rawVersion = body["version"]?.phpScalarString else {
            return .fail(400, "Missing required field: name")
        }
        let name = PHPTrim.trim(rawName), version = PHPTrim.trim(rawVersion)
        if name.isEmpty { return .fail(400, "Missing required field: name") }
        if version.isEmpty { return .fail(400, "Missing required field: version") }
        let schema: JSONValue
        if case .string(let s) = body["param_schema"]! {
            guard let parsed = try? JSONParser.parse(s) else { return .fail(400, "Invalid JSON schema format") }
            schema = parsed
        } else {
            schema = body["param_schema"]!
        }
        guard PHPJSON.isAssociative(schema), let t = schema["type"], !t.isNull else {
            return .fail(400, "JSON schema must have a \"type\" property")
        }
        switch try await store.registerType(name: name, version: version, schemaJSON: PHPJSON.encode(schema)) {
        case .created(let id):
            return .ok(["id": .int(id), "name": .string(name), "version": .string(version), "created": true])
        case .updated(let id):
            return .ok(["id": .int(id), "name": .string(name), "version": .string(version), "updated": true])
        }
    }

    private func typeJSON(_ t: TaskStore.TypeRow, withSchema: Bool, withUsage: Bool) -> JSONValue {
        var m: [JSONMember] = [
            JSONMember("id", .int(t.id)), JSONMember("name", .string(t.name)),
            JSONMember("version", .string(t.version)),
        ]
        if withSchema { m.append(JSONMember("param_schema", (try? JSONParser.parse(t.schemaJSON)) ?? .null)) }
        m.append(JSONMember("is_active", .int(t.isActive ? 1 : 0)))
        m.append(JSONMember("created_at", .string(t.createdAt)))
        m.append(JSONMember("updated_at", .string(t.updatedAt)))
        if withUsage {
            m.append(JSONMember("usage_count", .int(t.usageCount)))
            m.append(JSONMember("last_used_at", t.lastUsedAt.map { .string($0) } ?? .null))
        }
        return .object(m)
    }

    private func getType(_ name: String) async throws -> Reply {
        guard let t = try await store.type(named: name) else { return .fail(404, "Task type not found") }
        return .ok(typeJSON(t, withSchema: true, withUsage: false))
    }

    private func listTypes(_ query: FlatDictionary<Substring, Substring>) async throws -> Reply {
        let active = query["active_only"].map { ["true", "1"].contains($0.lowercased()) } ?? false
        let sortBy = query["sort_by"].map(String.init) ?? "usage_count"
        let sortOrder = (query["sort_order"].map(String.init) ?? "DESC").uppercased()
        guard TaskStore.typeSortColumns.contains(sortBy) else {
            return .fail(
                400, "Invalid sort_by field. Allowed values: \(TaskStore.typeSortColumns.joined(separator: ", "))")
        }
        guard ["ASC", "DESC"].contains(sortOrder) else {
            return .fail(400, "Invalid sort_order. Allowed values: ASC, DESC")
        }
        let rows = try await store.listTypes(activeOnly: active, sortBy: sortBy, sortOrder: sortOrder)
        return .ok([
            "items": .array(rows.map { typeJSON($0, withSchema: false, withUsage: true) }),
            "count": .int(Int64(rows.count)),
        ])
    }

    private func createTask(_ body: JSONValue) async throws -> Reply {
        let details = RequestValidation.validate(body, RequestValidation.createTask)
        // The PHP server accepts any `priority` (it ignores the field), so no
        // value may turn a request it takes into a 400 here; `intval` keeps
        // numeric strings and floats meaningful and makes anything else 0.
        let priority = body["priority"].map(Self.phpIntval) ?? 0
        if !details.isEmpty { return .fail(400, "Validation failed", details: details) }
        let typeName = PHPTrim.trim(body["type"]!.stringValue!)
        let params = body["params"]!
        guard let (type, parsedSchema) = try await store.cachedType(named: typeName) else {
            return .fail(404, "Task type not found")
        }
        guard type.isActive else { return .fail(400, "Task type is not active") }
        if config.enableSchemaValidation, let schema = parsedSchema {
            let errors = JSONSchemaValidator().validate(params, schema: schema)
            if !errors.isEmpty { return .fail(400, "Parameter validation failed: " + errors.joined(separator: ", ")) }
        }
        let paramsJSON = PHPJSON.encode(params)
        if let limit = config.maxParamsBytes, paramsJSON.utf8.count > limit {
            // The PHP server answers a 500 here (its TEXT column, spec 17.1); a
            // refusal is a 4xx, with the limit named.
            return .fail(400, "Params too large: \(paramsJSON.utf8.count) bytes encoded, the limit is \(limit) bytes")
        }
        switch try await store.createTask(
            typeID: type.id, typeName: type.name, paramsJSON: paramsJSON, priority: priority)
        {
        case .created(let id, let key):
            return .ok([
                "id": .int(id), "type": .string(type.name), "status": "pending", "priority": .int(priority),
                "dedupe_key": .string(key), "message": "Task created successfully",
            ])
        case .deduplicated(let id, let status):
            return .ok([
                "id": .int(id), "status": .string(status), "deduplicated": true,
                "message": "Task already exists (deduplicated)",
            ])
        }
    }

    private func claim(_ body: JSONValue) async throws -> Reply {
        let details = RequestValidation.validate(body, RequestValidation.claim)
        if !details.isEmpty { return .fail(400, "Validation failed", details: details) }
        guard let rawTypeID = body["task_type_id"], !rawTypeID.isNull else {
            return .fail(400, "Missing required field: task_type_id")
        }
        let typeID = Self.phpIntval(rawTypeID)
        guard typeID > 0 else { return .fail(400, "task_type_id must be a positive integer") }
        let sortBy = body["sort_by"]?.phpScalarString ?? "created_at"
        guard TaskStore.claimSortColumns.contains(sortBy) else {
            return .fail(400, "Invalid sort_by field. Allowed values: created_at, priority, id, attempts")
        }
        let sortOrder = (body["sort_order"]?.phpScalarString ?? "ASC").uppercased()
        guard sortOrder == "ASC" || sortOrder == "DESC" else {
            return .fail(400, "Invalid sort_order. Allowed values: ASC, DESC")
        }
        let worker = PHPTrim.trim(body["worker_id"]!.stringValue!)
        let pattern = body["type_pattern"]?.stringValue
        guard
            let c = try await store.claim(
                workerID: worker, typeID: typeID, typePattern: pattern, sortBy: sortBy, sortOrder: sortOrder)
        else { return .fail(404, "No available tasks") }
        // params_json is stored exactly as json_encode wrote it; splice it in
        // rather than decoding and re-encoding it on the hot path.
        let text =
            #"{"success":true,"message":"Success","data":{"id":"# + String(c.id) + #","type":"#
            + PHPJSON.encode(.string(c.type)) + #","params":"# + c.paramsJSON + #","attempts":"# + String(c.attempts)
            + #","priority":"# + String(c.priority) + #","message":"Task claimed successfully"},"timestamp":"#
            + String(Envelope.now()) + "}"
        return Reply(status: .ok, body: nil, raw: text)
    }

    /// PHP `intval`: leading integer of a string, truncation of a float.
    static func phpIntval(_ v: JSONValue) -> Int64 {
        switch v {
        case .int(let i): return i
        case .double(let d): return d.isFinite && abs(d) < 9e18 ? Int64(d) : 0
        case .bool(let b): return b ? 1 : 0
        case .string(let s):
            let t = s.drop(while: { $0 == " " || $0 == "\t" || $0 == "\n" })
            var digits = ""
            for (i, ch) in t.enumerated() {
                if ch.isASCII && ch.isNumber || (i == 0 && (ch == "-" || ch == "+")) {
                    digits.append(ch)
                } else {
                    break
                }
            }
            return Int64(digits) ?? 0
        default: return 0
        }
    }

    private func taskID(_ segment: String) -> Int64? {
        guard let id = Int64(segment), id > 0 else { return nil }
        return id
    }

    private func complete(id segment: String, _ body: JSONValue) async throws -> Reply {
        for field in ["worker_id", "success"] where body[field] == nil || body[field] == .null {
            return .fail(400, "Missing required field: \(field)")
        }
        guard let id = taskID(segment) else { return .fail(404, "Task not found") }
        let worker = PHPTrim.trim(body["worker_id"]!.phpScalarString ?? "")
        let success = body["success"]!.phpTruthy
        let result = body["result"].flatMap { $0.phpTruthy ? PHPJSON.encode($0) : nil }
        let error = body["error"].flatMap { $0.isNull ? nil : ($0.phpScalarString ?? PHPJSON.encode($0)) }
        let status = try await store.complete(
            id: id, workerID: worker, success: success, resultJSON: result, error: error)
        return .ok(["id": .int(id), "status": .string(status), "message": "Task completed"])
    }

    private func progress(id segment: String, _ body: JSONValue) async throws -> Reply {
        let details = RequestValidation.validate(body, RequestValidation.progress)
        if !details.isEmpty { return .fail(400, "Validation failed", details: details) }
        guard let id = taskID(segment) else { return .fail(404, "Task not found") }
        let worker = PHPTrim.trim(body["worker_id"]!.stringValue!)
        let value = body["progress"]!.intValue!
        try await store.progress(id: id, workerID: worker, progress: value, message: body["message"]?.phpScalarString)
        return .ok(["id": .int(id), "progress": .int(value), "message": "Task progress updated successfully"])
    }

    private func getTask(_ segment: String) async throws -> Reply {
        guard let id = taskID(segment), let t = try await store.task(id: id) else {
            return .fail(404, "Task not found")
        }
        func json(_ text: String?) -> JSONValue { text.flatMap { try? JSONParser.parse($0) } ?? .null }
        return .ok(
            .object([
                JSONMember("id", .int(t.id)), JSONMember("type", .string(t.type)),
                JSONMember("status", .string(t.status)),
                JSONMember("params", json(t.paramsJSON)), JSONMember("result", json(t.resultJSON)),
                JSONMember("error_message", Self.text(t.errorMessage)), JSONMember("priority", .int(t.priority)),
                JSONMember("progress", .int(t.progress)), JSONMember("attempts", .int(t.attempts)),
                JSONMember("claimed_by", Self.text(t.claimedBy)), JSONMember("claimed_at", Self.text(t.claimedAt)),
                JSONMember("completed_at", Self.text(t.completedAt)), JSONMember("created_at", .string(t.createdAt)),
            ]))
    }

    static func text(_ s: String?) -> JSONValue { s.map { .string($0) } ?? .null }

    private func listTasks(_ query: FlatDictionary<Substring, Substring>) async throws -> Reply {
        let statuses = (query["status"].map(String.init) ?? "").split(separator: ",").map {
            $0.trimmingCharacters(in: .whitespaces)
        }.filter { !$0.isEmpty }
        let limitText = query["limit"].map(String.init) ?? "50"
        let offsetText = query["offset"].map(String.init) ?? "0"
        let limit = Self.phpIntval(.string(limitText)), offset = Self.phpIntval(.string(offsetText))
        guard limit >= 0, offset >= 0 else {
            return .fail(400, "Validation failed", details: ["Field 'limit' and 'offset' must not be negative"])
        }
        let rows = try await store.listTasks(
            statuses: statuses, type: query["type"].map(String.init), limit: Int(min(limit, 10_000)),
            offset: Int(offset))
        let items: [JSONValue] = rows.map { t in
            .object([
                JSONMember("id", .int(t.id)), JSONMember("type", .string(t.type)),
                JSONMember("status", .string(t.status)),
                JSONMember("priority", .int(t.priority)), JSONMember("progress", .int(t.progress)),
                JSONMember("attempts", .int(t.attempts)), JSONMember("claimed_by", Self.text(t.claimedBy)),
                JSONMember("created_at", .string(t.createdAt)), JSONMember("completed_at", Self.text(t.completedAt)),
            ])
        }
        return .ok(["items": .array(items), "count": .int(Int64(items.count))])
    }
}
