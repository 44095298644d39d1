import BridgeConfig
import BridgeEngine
import Foundation
import HTTPTypes
import Hummingbird
import LegacyQueue
import Logging
import TaskManagerModel

/// The migration dashboard on the metrics listener: the page and its assets
/// (compiled into the binary), a JSON snapshot polled every 2 s, the
/// quarantine in pages, and two actions (quarantine retry, cutover).
///
/// Security, enforced here for every route:
/// - GET never changes state; actions are POST with a JSON body and the
///   admin token in a header (`AdminToken.header`). A cross-site form can set
///   neither, and the token never appears in a cookie, a URL or the page.
/// - Every response carries a Content-Security-Policy that allows scripts and
///   styles from this origin only: a value that slipped into markup still
///   could not run. The page itself writes values with `textContent` only.
/// - Nothing here can read the TaskManager key.
public struct Dashboard: Sendable {
    let engine: BridgeEngine
    let config: BridgeConfiguration
    let model: DashboardModel
    let token: AdminToken
    let host: String
    let logger: Logger

    public init(engine: BridgeEngine, config: BridgeConfiguration, token: AdminToken, host: String, logger: Logger) {
        self.engine = engine
        self.config = config
        self.token = token
        self.host = host
        self.logger = logger
        model = DashboardModel(engine: engine, config: config, host: host)
    }

    static let csp =
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        + "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

    static func response(_ status: HTTPResponse.Status = .ok, type: String, body: ByteBuffer) -> Response {
        var h = HTTPFields()
        h[.contentType] = type
        h[.contentSecurityPolicy] = csp
        h[HTTPField.Name("X-Content-Type-Options")!] = "nosniff"
        h[HTTPField.Name("Referrer-Policy")!] = "no-referrer"
        h[.cacheControl] = "no-store"
        return Response(status: status, headers: h, body: .init(byteBuffer: body))
    }

    static func json(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
        response(status, type: "application/json; charset=utf-8", body: ByteBuffer(string: PHPJSON.encode(value)))
    }

    static func error(_ status: HTTPResponse.Status, _ message: String) -> Response {
        json(["error": .string(message)], status: status)
    }

    /// The page and its assets, the same for every queue.
    static func addAssets<Context: RequestContext>(to router: Router<Context>) {
        let assets: [(String, String, [UInt8])] = [
            ("/", "text/html; charset=utf-8", PackageResources.index_html),
            ("/dashboard.js", "text/javascript; charset=utf-8", PackageResources.dashboard_js),
            ("/dashboard.css", "text/css; charset=utf-8", PackageResources.dashboard_css),
        ]
        for (path, type, bytes) in assets {
            let body = ByteBuffer(bytes: bytes)
            router.get(RouterPath(path)) { _, _ in Self.response(type: type, body: body) }
        }
    }

    func snapshotResponse() async -> Response {
        do {
            return Self.json(try await model.snapshot())
        } catch {
            return Self.error(.serviceUnavailable, LogSafe.escape("\(error)"))
        }
    }

    func quarantineResponse(_ request: Request) async -> Response {
        let q = request.uri.queryParameters
        let offset = max(0, q.get("offset", as: Int.self) ?? 0)
        let limit = min(200, max(1, q.get("limit", as: Int.self) ?? 25))
        let type = q.get("type").flatMap { $0.isEmpty ? nil : String($0) }
        do {
            return Self.json(try await model.quarantine(taskType: type, offset: offset, limit: limit))
        } catch {
            return Self.error(.serviceUnavailable, LogSafe.escape("\(error)"))
        }
    }

    struct Refusal: Error {
        var status: HTTPResponse.Status
        var message: String
    }

    /// Checks the token and the body before an action runs; every refusal
    /// is logged (never with the token) and answered with a reason.
    func action(_ request: Request, _ run: (JSONValue) async throws -> JSONValue) async -> Response {
        let path = request.uri.path
        guard token.accepts(request.headers[HTTPField.Name(AdminToken.header)!]) else {
            logger.warning("dashboard action refused: no valid admin token", metadata: ["path": "\(path)"])
            return Self.error(.unauthorized, "this action needs the admin token (\(AdminToken.header) header)")
        }
        guard request.headers[.contentType]?.hasPrefix("application/json") == true else {
            return Self.error(.unsupportedMediaType, "send the action as application/json")
        }
        do {
            let bytes = try await request.body.collect(upTo: 64 * 1024)
            let body: JSONValue
            do {
                body = try JSONParser.parse(Array(buffer: bytes))
            } catch {
                throw Refusal(status: .badRequest, message: "the body is not JSON: \(error)")
            }
            return Self.json(try await run(body))
        } catch let r as Refusal {
            logger.warning("dashboard action refused", metadata: ["path": "\(path)", "reason": "\(r.message)"])
            return Self.error(r.status, r.message)
        } catch {
            logger.error("dashboard action failed", metadata: ["path": "\(path)", "error": "\(error)"])
            return Self.error(.internalServerError, LogSafe.escape("\(error)"))
        }
    }

    /// `{"ids": [1, 2]}` or `{"task_type": "x"}`, and an optional `reason`.
    func retry(_ body: JSONValue) async throws -> JSONValue {
        let ids = body["ids"]?.arrayValue?.compactMap(\.intValue)
        let type = body["task_type"]?.stringValue
        guard (ids?.isEmpty == false) != (type != nil) else {
            throw Refusal(status: .badRequest, message: "give either \"ids\" (a non-empty list) or \"task_type\"")
        }
        let released = try await engine.store.quarantineRetry(
            ids: ids, taskType: type, actor: "dashboard", host: host, reason: body["reason"]?.stringValue)
        logger.notice(
            "quarantine retry from the dashboard",
            metadata: ["released": "\(released.count)", "task_type": "\(type ?? "-")"])
        return ["released": .array(released.map { .int($0) })]
    }

    /// `{"task_type": "x", "mode": "forward", "percent": 25, "reason": "why"}`: the same
    /// rules as `taskbridge cutover` (a mapping first; forward from shadow
    /// only through the shadow gate, retired only through the retire-check
    /// gate; the page has no `--force`).
    func cutover(_ body: JSONValue) async throws -> JSONValue {
        guard let type = body["task_type"]?.stringValue, !type.isEmpty else {
            throw Refusal(status: .badRequest, message: "\"task_type\" is required")
        }
        guard let mode = body["mode"]?.stringValue.flatMap(BridgeMode.init(rawValue:)) else {
            throw Refusal(
                status: .badRequest,
                message: "\"mode\" must be one of " + BridgeMode.allCases.map(\.rawValue).joined(separator: ", "))
        }
        let percent = body["percent"].map { $0.isNull ? 100 : ($0.intValue.map(Int.init) ?? -1) } ?? 100
        guard (1...100).contains(percent), percent == 100 || mode.takesPercent else {
            throw Refusal(status: .badRequest, message: "\"percent\" is 1 to 100, and only for forward and shadow")
        }
        guard let reason = body["reason"]?.stringValue?.trimmingCharacters(in: .whitespacesAndNewlines),
            !reason.isEmpty
        else { throw Refusal(status: .badRequest, message: "a cutover needs a reason (it is audited)") }
        // The CLI's rules (the page has no --force).
        let request = Cutover.Request(
            taskType: type, mode: mode, percent: mode.takesPercent ? percent : nil, reason: reason, actor: "dashboard",
            host: host)
        let outcome: Cutover.Outcome
        do {
            outcome = try await Cutover.perform(request, config: config, store: engine.store) {
                try await RetireCheck.check(
                    config: config, store: engine.store, client: engine.client, only: type, quiet: .seconds(86400),
                    grace: 60)
            }
        } catch let r as Cutover.Refusal {
            throw Refusal(
                status: r.kind == .usage ? .badRequest : .conflict,
                message: r.description + (r.gateReport.map { ":\n" + $0 } ?? ""))
        }
        let from = outcome.from, to = outcome.to
        logger.notice(
            "cutover from the dashboard", metadata: ["task_type": "\(type)", "from": "\(from)", "to": "\(to)"])
        return ["task_type": .string(type), "from": .string(from), "to": .string(to)]
    }
}
