import BridgeConfig
import BridgeEngine
import BridgeRuntime
import Foundation
import HTTPTypes
import Hummingbird
import LegacyQueue
import Logging
import Synchronization
import TaskManagerModel

/// Everything `run` serves on its metrics listener, for every queue of the
/// process: `/metrics`, `/health`, `/status.json`, `/fleet.json` and the
/// dashboard (one page per queue, `?queue=NAME`; an overview of all queues
/// at `/` when the file names several).
///
/// A single-queue file keeps every key `/health` and `/status.json` had
/// before queues existed where it was (scripts read them); `queues` is added.
public struct BridgeHTTP: Sendable {
    let queues: [QueueSupervisor]
    /// The file uses `[queues.NAME]`.
    let named: Bool
    let token: AdminToken
    let host: String
    let logger: Logger
    let metrics: @Sendable () -> [UInt8]
    let dashboards = Dashboards()

    public init(
        queues: [QueueSupervisor], named: Bool, token: AdminToken, host: String, logger: Logger,
        metrics: @escaping @Sendable () -> [UInt8]
    ) {
        self.queues = queues
        self.named = named
        self.token = token
        self.host = host
        self.logger = logger
        self.metrics = metrics
    }

    var single: Bool { queues.count == 1 }

    public func application(listen: String) throws -> some ApplicationProtocol {
        guard let (h, port) = ConfigLoader.parseHostPort(listen) else {
            throw ConfigError(file: "", "[bridge] metrics_listen must be HOST:PORT")
        }
        var quiet = logger
        quiet.logLevel = .warning
        return Application(router: router(), configuration: .init(address: .hostname(h, port: port)), logger: quiet)
    }

    func router() -> Router<BasicRequestContext> {
        let router = Router()
        let metrics = self.metrics
        router.get("/metrics") { _, _ -> Response in
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: metrics())))
        }
        router.get("/health") { _, _ -> Response in
            let (healthy, body) = await self.health()
            return Self.plainJSON(body, status: healthy ? .ok : .serviceUnavailable)
        }
        router.get("/status.json") { _, _ -> Response in
            do {
                return Self.plainJSON(try await self.status())
            } catch {
                return Self.plainJSON(["error": .string(LogSafe.escape("\(error)"))], status: .serviceUnavailable)
            }
        }
        router.get("/fleet.json") { _, _ -> Response in
            Dashboard.json(await self.fleet())
        }
        Dashboard.addAssets(to: router)
        router.get("/dashboard.json") { request, _ -> Response in
            await self.withDashboard(request) { d in await d.snapshotResponse() }
        }
        router.get("/dashboard/quarantine.json") { request, _ -> Response in
            await self.withDashboard(request) { d in await d.quarantineResponse(request) }
        }
        router.post("/dashboard/actions/quarantine-retry") { request, _ -> Response in
            await self.withDashboard(request) { d in await d.action(request) { body in try await d.retry(body) } }
        }
        router.post("/dashboard/actions/cutover") { request, _ -> Response in
            await self.withDashboard(request) { d in await d.action(request) { body in try await d.cutover(body) } }
        }
        return router
    }

    static func plainJSON(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(
            status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: PHPJSON.encode(value))))
    }

    /// The queue a request names (`?queue=`), or the only one.
    /// The queue a request names (`?queue=`), or the only one; else why not.
    func supervisor(_ request: Request) -> (QueueSupervisor?, String) {
        let name: String? = request.uri.queryParameters.get("queue").map { String($0) }
        if let name, let s = queues.first(where: { $0.name == name }) { return (s, "") }
        if name == nil, single { return (queues[0], "") }
        let names = queues.map(\.name).joined(separator: ", ")
        if let name { return (nil, "no queue named \"\(name)\" (configured: \(names))") }
        return (nil, "this process bridges several queues (\(names)): add ?queue=NAME")
    }

    func withDashboard(_ request: Request, _ body: (Dashboard) async -> Response) async -> Response {
        switch supervisor(request) {
        case (nil, let why): return Dashboard.error(.notFound, why)
        case (let s?, _):
            guard let q = s.instance else {
                return Dashboard.error(
                    .serviceUnavailable, "queue \(s.name) is not running: \(LogSafe.escape(s.problem ?? "starting"))")
            }
            return await body(dashboards.dashboard(for: q, token: token, host: host, logger: logger))
        }
    }

    // MARK: - Health and status

    /// Healthy when every queue runs and is healthy; the details name the
    /// queues that are not.
    func health() async -> (Bool, JSONValue) {
        var perQueue: [JSONMember] = []
        var unhealthy: [JSONValue] = []
        var first: JSONValue?
        for s in queues {
            let details: JSONValue
            let ok: Bool
            if let q = s.instance {
                let h = await q.engine.health()
                (ok, details) = (h.healthy, h.details)
            } else {
                ok = false
                details = [
                    "status": "degraded", "running": false,
                    "problem": .string(LogSafe.escape(s.problem ?? "starting")),
                ]
            }
            if !ok { unhealthy.append(.string(s.name)) }
            if first == nil { first = details }
            perQueue.append(JSONMember(s.name, details))
        }
        let healthy = unhealthy.isEmpty
        var members: [JSONMember] = []
        if single, case .object(let m)? = first {
            members = m  // the keys a single-queue bridge always had, where they were
        } else {
            members.append(JSONMember("status", .string(healthy ? "ok" : "degraded")))
        }
        members.append(JSONMember("unhealthy_queues", .array(unhealthy)))
        members.append(JSONMember("queues", .object(perQueue)))
        return (healthy, .object(members))
    }

    /// `StatusModel` per queue: the single-queue document as before, or
    /// `queues` (one model each) and `totals`.
    func status() async throws -> JSONValue {
        if single, let q = queues[0].instance {
            return try await StatusModel.build(config: q.config, store: q.store).json
        }
        var list: [JSONValue] = []
        var totals = StatusModel.Totals()
        for s in queues {
            guard let q = s.instance else {
                list.append([
                    "queue": .string(s.name), "database": .string(s.config.legacy.database), "running": false,
                    "problem": .string(LogSafe.escape(s.problem ?? "starting")),
                ])
                continue
            }
            let view = try await StatusModel.build(config: q.config, store: q.store)
            totals.add(view.json)
            guard case .object(var m) = view.json else { continue }
            m.append(JSONMember("running", true))
            list.append(.object(m))
        }
        return ["queues": .array(list), "totals": totals.json]
    }

    /// The overview: per queue, where it runs, each type's stage, totals and
    /// what needs attention.
    func fleet() async -> JSONValue {
        var list: [JSONValue] = []
        var totals = StatusModel.Totals()
        var attentionCount = 0
        for s in queues {
            var attention: [JSONValue] = []
            var types: [JSONValue] = []
            var qt = StatusModel.Totals()
            if let q = s.instance, let view = try? await StatusModel.build(config: q.config, store: q.store) {
                qt.add(view.json)
                for t in view.json["types"]?.arrayValue ?? [] {
                    let mode = t["mode"]?.stringValue ?? "off"
                    let pct = t["percent"]?.intValue ?? 100
                    types.append([
                        "task_type": t["task_type"] ?? .null,
                        "stage": .string(ModeState(mode: mode, percent: Int(pct)).label),
                    ])
                }
                let h = await q.engine.health()
                if !h.healthy { attention.append("unhealthy") }
                if qt.quarantined > 0 { attention.append(.string("\(qt.quarantined) quarantined")) }
                if qt.parityFindings > 0 { attention.append(.string("\(qt.parityFindings) parity findings")) }
            } else {
                attention.append(.string("not running: " + LogSafe.escape(s.problem ?? "starting")))
            }
            if !attention.isEmpty { attentionCount += 1 }
            totals.merge(qt)
            list.append([
                "queue": .string(s.name), "database": .string(s.config.legacy.database),
                "state": .string(s.instance == nil ? "not running" : "running"), "types": .array(types),
                "totals": qt.json, "attention": .array(attention),
            ])
        }
        return [
            "host": .string(host), "queues": .array(list), "totals": totals.json,
            "attention": .int(Int64(attentionCount)),
        ]
    }
}

/// One `Dashboard` per running queue instance (a reopened queue gets a new one).
final class Dashboards: Sendable {
    let cache = Mutex<[ObjectIdentifier: Dashboard]>([:])

    func dashboard(for q: QueueInstance, token: AdminToken, host: String, logger: Logger) -> Dashboard {
        cache.withLock { c in
            if let d = c[ObjectIdentifier(q)] { return d }
            var l = logger
            l[metadataKey: "queue"] = "\(q.config.queue)"
            let d = Dashboard(engine: q.engine, config: q.config, token: token, host: host, logger: l)
            c[ObjectIdentifier(q)] = d
            return d
        }
    }
}
