import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import Synchronization
import TaskManagerModel

/// A Swift client for the TaskManager REST API, tolerant of the PHP server as
/// it really answers (spec section 11.5): ids as int or numeric string,
/// `{items,count}` wrappers around single objects, an empty claim answered by
/// 404 or by the PHP bug (500 "There is no active transaction"),
/// `deduplicated`/`duplicate`, and middleware errors sent as `text/html`.
public final class TaskManagerClient: Sendable {
    public let configuration: ClientConfiguration
    let http: HTTPClient
    let gate: ConcurrencyGate
    let deadlines: RequestDeadlines
    let logger: Logger

    public init(configuration: ClientConfiguration, logger: Logger = Logger(label: "taskmanager.client")) {
        self.configuration = configuration
        var c = HTTPClient.Configuration()
        c.timeout = .init(
            connect: Self.timeAmount(configuration.connectTimeout), read: Self.timeAmount(configuration.requestTimeout))
        c.connectionPool = .init(
            idleTimeout: .seconds(60),
            concurrentHTTP1ConnectionsPerHostSoftLimit: max(8, configuration.maxConcurrentRequests))
        c.decompression = .disabled
        self.http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: c)
        self.gate = ConcurrencyGate(limit: configuration.maxConcurrentRequests)
        self.deadlines = RequestDeadlines(
            eventLoop: http.eventLoopGroup.next(), requestTimeout: Self.timeAmount(configuration.requestTimeout))
        self.logger = logger
    }

    /// Must be called before the client is released.
    public func shutdown() async {
        deadlines.stop()
        try? await http.shutdown()
    }

    // MARK: - Routes

    public func health() async throws(TaskManagerError) -> JSONValue {
        try await send(.GET, "/health", retry: true)
    }

    public func registerTaskType(
        name: String, version: String, paramSchema: JSONValue
    ) async throws(TaskManagerError)
        -> RegisterResult
    {
        let body: JSONValue = ["name": .string(name), "version": .string(version), "param_schema": paramSchema]
        // Register is an upsert: repeating it is harmless.
        return try decode(try await send(.POST, "/task-types/register", body: body, retry: true), RegisterResult.init)
    }

    public func getTaskType(name: String) async throws(TaskManagerError) -> TaskTypeInfo {
        let data = try await send(.GET, "/task-types/\(Self.pathSegment(name))", retry: true)
        guard let item = try Self.single(data) else { throw .notFound("Task type not found") }
        return try decode(item, TaskTypeInfo.init)
    }

    public func listTaskTypes(activeOnly: Bool = false) async throws(TaskManagerError) -> [TaskTypeInfo] {
        let data = try await send(.GET, "/task-types" + (activeOnly ? "?active_only=1" : ""), retry: true)
        return try items(data).map { v throws(TaskManagerError) in try decode(v, TaskTypeInfo.init) }
    }

    /// Creates a task, or returns the existing one with the same type and
    /// params (in any status). Safe to retry: the API dedupes.
    public func createTask(
        type: String, params: JSONValue, priority: Int? = nil
    ) async throws(TaskManagerError) -> CreateResult {
        var members = [JSONMember("type", .string(type)), JSONMember("params", params)]
        if let priority { members.append(JSONMember("priority", .int(Int64(priority)))) }
        return try decode(try await send(.POST, "/tasks", body: .object(members), retry: true), CreateResult.init)
    }

    /// Claims one task of a type; nil when there is none.
    public func claimTask(
        workerID: String, taskTypeID: Int64, policy: ClaimPolicy = .fifo, typePattern: String? = nil
    ) async throws(TaskManagerError) -> ClaimedTask? {
        try await claimTask(
            workerID: workerID, taskTypeID: taskTypeID, sortBy: policy.sortBy, sortOrder: policy.sortOrder,
            typePattern: typePattern)
    }

    public func claimTask(
        workerID: String, taskTypeID: Int64, sortBy: String, sortOrder: String, typePattern: String? = nil
    ) async throws(TaskManagerError) -> ClaimedTask? {
        var members = [
            JSONMember("worker_id", .string(workerID)), JSONMember("task_type_id", .int(taskTypeID)),
            JSONMember("sort_by", .string(sortBy)), JSONMember("sort_order", .string(sortOrder)),
        ]
        if let typePattern { members.append(JSONMember("type_pattern", .string(typePattern))) }
        do {
            // Never retried: a lost answer would leave a claimed task behind.
            return try decode(
                try await send(.POST, "/tasks/claim", body: .object(members), retry: false), ClaimedTask.init)
        } catch .notFound {
            return nil
        } catch .server(500, let message) where message.contains("There is no active transaction") {
            return nil
        }
    }

    /// Reports the outcome; `success: false` is the only way to fail a task.
    public func completeTask(
        id: Int64, workerID: String, success: Bool, result: JSONValue? = nil, error: String? = nil
    )
        async throws(TaskManagerError) -> CompleteResult
    {
        var members = [JSONMember("worker_id", .string(workerID)), JSONMember("success", .bool(success))]
        if let result { members.append(JSONMember("result", result)) }
        if let error { members.append(JSONMember("error", .string(error))) }
        return try decode(
            try await send(.POST, "/tasks/\(id)/complete", body: .object(members), retry: false), CompleteResult.init)
    }

    public func updateProgress(
        id: Int64, workerID: String, progress: Int, message: String? = nil
    ) async throws(TaskManagerError)
        -> ProgressResult
    {
        var members = [JSONMember("worker_id", .string(workerID)), JSONMember("progress", .int(Int64(progress)))]
        if let message { members.append(JSONMember("message", .string(message))) }
        return try decode(
            try await send(.POST, "/tasks/\(id)/progress", body: .object(members), retry: false), ProgressResult.init)
    }

    public func getTask(id: Int64) async throws(TaskManagerError) -> TaskInfo {
        let data = try await send(.GET, "/tasks/\(id)", retry: true)
        guard let item = try Self.single(data) else { throw .notFound("Task not found") }
        return try decode(item, TaskInfo.init)
    }

    /// Lists tasks, newest first. Several statuses are fetched one call per
    /// status (the PHP server has no comma filter) and merged.
    public func listTasks(
        statuses: [String] = [], type: String? = nil, limit: Int = 50, offset: Int = 0
    )
        async throws(TaskManagerError) -> [TaskInfo]
    {
        if statuses.count > 1 {
            var merged: [TaskInfo] = []
            for s in statuses {
                merged += try await listTasks(statuses: [s], type: type, limit: limit + offset, offset: 0)
            }
            merged.sort { ($0.createdAt ?? "", $0.id) > ($1.createdAt ?? "", $1.id) }
            return Array(merged.dropFirst(offset).prefix(limit))
        }
        var query = ["limit=\(limit)", "offset=\(offset)"]
        if let s = statuses.first { query.append("status=\(Self.queryValue(s))") }
        if let type { query.append("type=\(Self.queryValue(type))") }
        let data = try await send(.GET, "/tasks?" + query.joined(separator: "&"), retry: true)
        return try items(data).map { v throws(TaskManagerError) in try decode(v, TaskInfo.init) }
    }

    // MARK: - Transport

    private func decode<T>(_ value: JSONValue, _ make: (JSONValue) -> T?) throws(TaskManagerError) -> T {
        guard let t = make(value) else { throw unexpected(value) }
        return t
    }

    /// A well-formed envelope whose `data` is not the expected shape. The key
    /// is redacted before the snippet is cut (see `interpret`).
    private func unexpected(_ data: JSONValue) -> TaskManagerError {
        var text = PHPJSON.encode(data)
        if !configuration.apiKey.isEmpty {
            text = text.replacingOccurrences(of: configuration.apiKey, with: "[redacted]")
        }
        return .undecodable(status: 200, snippet: String(text.prefix(200)))
    }

    /// Single-object GETs: the PHP server wraps them in `{items,count}`.
    static func single(_ data: JSONValue) throws(TaskManagerError) -> JSONValue? {
        if let items = data["items"]?.arrayValue { return items.first }
        return data.isNull ? nil : data
    }

    private func items(_ data: JSONValue) throws(TaskManagerError) -> [JSONValue] {
        if let items = data["items"]?.arrayValue { return items }
        if let items = data.arrayValue { return items }
        throw unexpected(data)
    }

    static func pathSegment(_ s: String) -> String {
        s.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/?#")))
            ?? s
    }

    static func queryValue(_ s: String) -> String {
        s.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? s
    }

    private func send(
        _ method: HTTPMethod, _ path: String, body: JSONValue? = nil, retry: Bool
    ) async throws(TaskManagerError)
        -> JSONValue
    {
        let attempts = retry ? max(1, configuration.maxAttempts) : 1
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try await sendOnce(method, path, body: body)
            } catch {
                guard attempt < attempts, error.isTransient else { throw error.redacting(configuration.apiKey) }
                var delay = configuration.retryBaseDelay * (1 << (attempt - 1))
                if case .rateLimited(let after?, _) = error {
                    let wait = Duration.milliseconds(Int64(after * 1000))
                    if wait > configuration.maxRetryAfter { throw error.redacting(configuration.apiKey) }
                    delay = wait
                }
                let jitter = Double.random(in: 0.8...1.2)
                try? await Task.sleep(for: delay * jitter)
            }
        }
    }

    private func sendOnce(
        _ method: HTTPMethod, _ path: String, body: JSONValue?
    ) async throws(TaskManagerError) -> JSONValue {
        let status: Int
        let headers: HTTPHeaders
        let bytes: ByteBuffer
        do {
            var request = try HTTPClient.Request(url: configuration.baseURL + path, method: method)
            request.headers.add(name: "X-API-Key", value: configuration.apiKey)
            request.headers.add(name: "Accept", value: "application/json")
            if let body {
                request.headers.add(name: "Content-Type", value: "application/json")
                // Whole floats keep their `.0`, as the server's validator needs (PHPJSON.encodeWire).
                request.body = .byteBuffer(ByteBuffer(string: PHPJSON.encodeWire(body)))
            }
            let prepared = request
            let response = try await gate.run { [http, deadlines] in
                // AsyncHTTPClient's future API with no deadline of its own: its
                // async API schedules and cancels a deadline on an event loop
                // for every request (two cross-thread wake-ups), and a task
                // group with a sleeping child for the whole-exchange deadline
                // cost two more. One sweep per client bounds every exchange,
                // body included (a body that trickles in cannot hold a slot).
                let task = http.execute(
                    request: prepared, delegate: ResponseAccumulator(request: prepared, maxBodySize: 64 << 20),
                    eventLoop: .indifferent, deadline: nil, logger: nil)
                let entry = deadlines.add(.now() + Self.timeAmount(configuration.requestTimeout)) {
                    task.fail(reason: DeadlineExceeded())
                }
                defer { deadlines.remove(entry) }
                do {
                    return try await withTaskCancellationHandler {
                        try await task.futureResult.get()
                    } onCancel: {
                        task.cancel()
                    }
                } catch {
                    if deadlines.expired(entry) { throw DeadlineExceeded() }
                    throw error
                }
            }
            (status, headers, bytes) = (Int(response.status.code), response.headers, response.body ?? ByteBuffer())
        } catch let e as TaskManagerError {
            throw e
        } catch {
            throw .transport(Self.describe(error))
        }
        return try Self.interpret(
            status: status, retryAfterHeader: headers.first(name: "Retry-After"), body: Array(bytes.readableBytesView),
            redacting: configuration.apiKey)
    }

    struct DeadlineExceeded: Error {}

    static func timeAmount(_ d: Duration) -> TimeAmount {
        let (seconds, attoseconds) = d.components
        return .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }

    static func describe(_ error: any Error) -> String {
        if error is DeadlineExceeded { return "request timed out (no complete answer within the request deadline)" }
        if let e = error as? HTTPClientError {
            if e == .connectTimeout { return "connect timeout" }
            if e == .deadlineExceeded || e == .readTimeout { return "request timed out" }
            if e == .remoteConnectionClosed { return "connection closed by server" }
            return "\(e)"
        }
        return String(describing: error)
    }

    /// Maps a raw answer to the envelope's `data` or a typed error. Status
    /// comes first: a 401 page that is not even JSON is still a 401.
    ///
    /// `secret` is removed from the whole body before the snippet is cut, so a
    /// key echoed across the cut cannot leave a prefix of itself behind.
    public static func interpret(
        status: Int, retryAfterHeader: String?, body: [UInt8], redacting secret: String = ""
    )
        throws(TaskManagerError) -> JSONValue
    {
        let json = try? JSONParser.parse(body)
        var bodyText = String(decoding: body, as: UTF8.self)
        if !secret.isEmpty { bodyText = bodyText.replacingOccurrences(of: secret, with: "[redacted]") }
        // Garbage answers carry NUL, control bytes and invalid UTF-8: escaped,
        // so that no log or error message carries them raw.
        let snippet = LogSafe.escape(String(bodyText.prefix(200)))
        let errorText = json?["error"]?.stringValue
        let message = json?["message"]?.stringValue
        let text =
            errorText.map { e in message.map { "\(e): \($0)" } ?? e } ?? (json == nil ? snippet : "HTTP \(status)")
        switch status {
        case 200..<300:
            guard let json, json["success"]?.boolValue == true else {
                if let json, json["success"]?.boolValue == false {
                    throw .server(status: status, message: errorText ?? "unknown error")
                }
                throw .undecodable(status: status, snippet: snippet)
            }
            return json["data"] ?? .null
        case 400:
            // Only TaskManager's own envelope is a validation verdict; a proxy's
            // or load balancer's 400 page says nothing about the params.
            guard let json, json["success"]?.boolValue == false || json["error"]?.stringValue != nil else {
                throw .undecodable(status: status, snippet: snippet)
            }
            let details = json["details"]?.arrayValue?.compactMap(\.stringValue) ?? []
            throw .validation(errorText ?? text, details: details)
        case 401: throw .unauthorized(message ?? errorText ?? "Unauthorized")
        case 403: throw .forbidden(errorText ?? text)
        case 404: throw .notFound(errorText ?? text)
        case 413: throw .payloadTooLarge(message ?? errorText ?? "Request Too Large")
        case 429:
            let after =
                retryAfterHeader.flatMap { Double($0.trimmingCharacters(in: .whitespaces)) }
                ?? json?["retry_after"]?.doubleValue
            throw .rateLimited(retryAfter: after, message: message ?? "Too Many Requests")
        default:
            if json == nil { throw .undecodable(status: status, snippet: snippet) }
            throw .server(status: status, message: errorText ?? text)
        }
    }
}

/// Bounds the requests in flight through one client. A lock, not an actor:
/// a request under the limit passes without a hop to another executor.
final class ConcurrencyGate: Sendable {
    let limit: Int
    private let state = Mutex<(running: Int, waiters: [CheckedContinuation<Void, Never>])>((0, []))

    init(limit: Int) { self.limit = max(1, limit) }

    /// Callers waiting for a slot (for tests).
    var waiting: Int { state.withLock { $0.waiters.count } }

    func run<T: Sendable>(_ body: @Sendable () async throws -> T) async throws -> T {
        let admitted = state.withLock { s in
            guard s.running < limit else { return false }
            s.running += 1
            return true
        }
        if !admitted {
            // Admitted by the `release` that hands its slot over.
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let now = state.withLock { s in
                    guard s.running < limit else {
                        s.waiters.append(c)
                        return false
                    }
                    s.running += 1
                    return true
                }
                if now { c.resume() }
            }
        }
        defer { release() }
        return try await body()
    }

    private func release() {
        let next = state.withLock { s -> CheckedContinuation<Void, Never>? in
            if s.waiters.isEmpty {
                s.running -= 1
                return nil
            }
            return s.waiters.removeFirst()
        }
        next?.resume()
    }
}

/// The whole-exchange deadline of every request of one client, enforced by
/// one repeated sweep on an event loop instead of a timer per request. A
/// request that overruns is failed within a quarter of the request timeout
/// (at most 250 ms) after its deadline.
final class RequestDeadlines: Sendable {
    struct Entry: Sendable {
        let deadline: NIODeadline
        let expire: @Sendable () -> Void
    }
    private struct State {
        var next: UInt64 = 0
        var live: [UInt64: Entry] = [:]
        var expired: Set<UInt64> = []
    }
    private final class Table: Sendable {
        let state = Mutex(State())

        func sweep() {
            let now = NIODeadline.now()
            let due = state.withLock { s -> [Entry] in
                guard !s.live.isEmpty else { return [] }
                var due: [Entry] = []
                for (id, e) in s.live where e.deadline <= now {
                    due.append(e)
                    s.live[id] = nil
                    s.expired.insert(id)
                }
                return due
            }
            for e in due { e.expire() }
        }
    }
    private let table: Table
    private let sweep: RepeatedTask

    init(eventLoop: any EventLoop, requestTimeout: TimeAmount) {
        let tick = TimeAmount.nanoseconds(max(10_000_000, min(250_000_000, requestTimeout.nanoseconds / 4)))
        let table = Table()
        self.table = table
        sweep = eventLoop.scheduleRepeatedTask(initialDelay: tick, delay: tick) { _ in table.sweep() }
    }

    func add(_ deadline: NIODeadline, expire: @escaping @Sendable () -> Void) -> UInt64 {
        table.state.withLock { s in
            s.next += 1
            s.live[s.next] = Entry(deadline: deadline, expire: expire)
            return s.next
        }
    }

    /// True if the sweep failed this request for its deadline.
    func expired(_ id: UInt64) -> Bool {
        table.state.withLock { $0.expired.contains(id) }
    }

    func remove(_ id: UInt64) {
        table.state.withLock { s in
            s.live[id] = nil
            s.expired.remove(id)
        }
    }

    func stop() { sweep.cancel() }
}
