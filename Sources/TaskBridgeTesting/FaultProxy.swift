import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import ServiceLifecycle
import NIOCore
import NIOHTTP1
import Synchronization
import TaskManagerModel

/// An HTTP proxy in front of a real TaskManager that injects the faults a
/// real server cannot produce on demand: outage (503 or HTML), 429 with
/// Retry-After, and "request delivered, answer lost" (the request reaches
/// the server, the response never comes back).
public final class FaultProxy: Sendable {
    public indirect enum Mode: Sendable, Equatable {
        case pass
        case status(Int, body: String, contentType: String = "text/html")
        case rateLimited(retryAfter: Int)
        /// Forward the request, then hang instead of answering.
        case swallowResponse
        /// Forward the request, then send the real answer's head at once and
        /// its body one byte per `interval` (a deadline must cover the body).
        case trickle(interval: Duration)
        /// Answer with these exact bytes (NUL, invalid UTF-8: garbage).
        case raw(Int, bytes: [UInt8], contentType: String = "text/plain")
        /// Answer `status` with the caller's own X-API-Key in the error text, as
        /// a careless server or proxy might: nothing may pass it on.
        case echoKey(Int)
        /// Requests whose body contains `marker` get `status` with a TaskManager
        /// error envelope saying `error`; the rest pass (a per-row refusal).
        case failMatching(marker: String, status: Int, error: String)
        /// `mode` for requests whose "METHOD path?query" contains `key`; the
        /// rest pass.
        case matching(String, Mode)
        /// A mix of what a bad network and a bad day give, drawn per request:
        /// delays of 0 to 2 s, 5xx envelopes, HTML 502s and garbage 200s.
        case chaos
        /// The real PHP server's ways (API spec sections 11.5 and 17): ids as
        /// strings, an empty claim as 500 "There is no active transaction",
        /// `Connection: close` on every answer.
        case php
    }

    public let upstream: String
    private let mode = Mutex<Mode>(.pass)
    private let counts = Mutex<[String: Int]>([:])
    private let task = Mutex<(group: ServiceGroup, task: Task<Void, any Error>)?>(nil)
    let http: HTTPClient
    private let boundPort = Mutex<Int>(0)
    public var port: Int { boundPort.withLock { $0 } }
    /// Set by `stop()`: held answers end, so a graceful shutdown finishes.
    private let stopping = Atomic<Bool>(false)

    /// Sleeps up to `d`, or until `stop()`.
    private func hold(_ d: Duration) async throws {
        let end = ContinuousClock.now + d
        while ContinuousClock.now < end && !stopping.load(ordering: .relaxed) {
            try await Task.sleep(for: min(.milliseconds(50), end - ContinuousClock.now))
        }
    }

    public init(upstream: String) {
        self.upstream = upstream
        http = HTTPClient(eventLoopGroupProvider: .singleton)
    }

    public func set(_ m: Mode) { mode.withLock { $0 = m } }
    /// Requests seen per "METHOD path", whatever the mode.
    public func count(_ key: String) -> Int { counts.withLock { $0[key] ?? 0 } }
    /// Every "METHOD path" seen, with its count.
    public func seen() -> [String: Int] { counts.withLock { $0 } }
    public func total() -> Int { counts.withLock { $0.values.reduce(0, +) } }
    public var baseURL: String { "http://127.0.0.1:\(port)/api" }

    public func start() async throws {
        let (stream, cont) = AsyncStream<Int>.makeStream()
        let responder = CallbackResponder<BasicRequestContext> { [self] request, _ in
            try await self.handle(request)
        }
        var quiet = Logger(label: "fault-proxy")
        quiet.logLevel = .critical
        let app = Application(
            responder: responder, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { ch in
                cont.yield(ch.localAddress?.port ?? 0); cont.finish()
            }, logger: quiet)
        // A graceful shutdown, never a cancellation: cancelling the serving
        // task while a connection is being accepted traps in NIO
        // ("Deinited NIOAsyncWriter without calling finish()", apple/swift-nio#3481).
        let group = ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: [], logger: quiet))
        task.withLock { $0 = (group, Task { try await group.run() }) }
        for await p in stream { boundPort.withLock { $0 = p } }
    }

    public func stop() async {
        let t = task.withLock { t -> (group: ServiceGroup, task: Task<Void, any Error>)? in
            defer { t = nil }; return t
        }
        stopping.store(true, ordering: .relaxed)
        await t?.group.triggerGracefulShutdown()
        // A client that keeps a connection open would hold the graceful
        // shutdown: past ten seconds the server is cancelled after all.
        if let t {
            let guardTask = Task {
                try await Task.sleep(for: .seconds(10))
                t.task.cancel()
            }
            _ = try? await t.task.value
            guardTask.cancel()
        }
        try? await http.shutdown()
    }

    /// The upstream's answer to this request.
    private func forward(
        _ request: Request, body: ByteBuffer? = nil
    ) async throws -> (HTTPResponse.Status, HTTPFields, ByteBuffer) {
        var out = HTTPClientRequest(
            url: upstream + request.uri.description.replacingOccurrences(of: "/api", with: "", options: .anchored))
        out.method = HTTPMethod(rawValue: request.method.rawValue)
        for f in request.headers where f.name.canonicalName != "host" {
            out.headers.add(name: f.name.rawName, value: f.value)
        }
        var req = request
        if let body {
            out.body = .bytes(body)
        } else {
            out.body = .bytes(try await req.collectBody(upTo: 16 << 20))
        }
        let r = try await http.execute(out, timeout: .seconds(30))
        let bytes = try await r.body.collect(upTo: 16 << 20)
        var h = HTTPFields()
        for (name, value) in r.headers {
            if let n = HTTPField.Name(name), n != .contentLength, n != .transferEncoding, n != .connection {
                h.append(HTTPField(name: n, value: value))
            }
        }
        return (.init(code: Int(r.status.code)), h, bytes)
    }

    private func handle(_ request: Request) async throws -> Response {
        let path = request.uri.path
        counts.withLock { $0["\(request.method.rawValue) \(path)", default: 0] += 1 }
        return try await answer(request, mode.withLock { $0 })
    }

    private func answer(_ request: Request, _ mode: Mode) async throws -> Response {
        switch mode {
        case .matching(let key, let inner):
            let line = "\(request.method.rawValue) \(request.uri.description)"
            return try await answer(request, line.contains(key) ? inner : .pass)
        case .chaos:
            let draw = Int.random(in: 0..<100)
            try await hold(.milliseconds(Int.random(in: 0...2000)))
            switch draw {
            case 0..<15:
                return try await answer(
                    request,
                    .status(
                        503, body: #"{"success":false,"error":"Service Unavailable"}"#,
                        contentType: "application/json"))
            case 15..<25:
                return try await answer(request, .status(502, body: "<html><body>502 Bad Gateway</body></html>"))
            case 25..<35: return try await answer(request, .raw(200, bytes: [0x00, 0xFF, 0x7B, 0x22]))
            default: return try await answer(request, .pass)
            }
        case .status(let code, let body, let type):
            var h = HTTPFields()
            h[.contentType] = type
            return Response(status: .init(code: code), headers: h, body: .init(byteBuffer: ByteBuffer(string: body)))
        case .rateLimited(let after):
            var h = HTTPFields()
            h[.contentType] = "text/html; charset=UTF-8"
            h[.retryAfter] = String(after)
            let body =
                #"""
                {"error":"Too Many Requests","message":"Rate limit exceeded. Please try again in \#(after) \#
                seconds.","retry_after":\#(after),"limit":100,"window":60,"timestamp":"2026-11-29T00:00:00+00:00"}
                """#
            return Response(status: .tooManyRequests, headers: h, body: .init(byteBuffer: ByteBuffer(string: body)))
        case .raw(let code, let bytes, let type):
            var h = HTTPFields()
            h[.contentType] = type
            return Response(status: .init(code: code), headers: h, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
        case .echoKey(let code):
            var h = HTTPFields()
            h[.contentType] = "application/json"
            let key = request.headers[HTTPField.Name("X-API-Key")!] ?? ""
            let body = PHPJSONText.error("Invalid key '\(key)' for this route")
            return Response(status: .init(code: code), headers: h, body: .init(byteBuffer: ByteBuffer(string: body)))
        case .failMatching(let marker, let code, let error):
            var req = request
            let body = try await req.collectBody(upTo: 16 << 20)
            if String(buffer: body).contains(marker) {
                var h = HTTPFields()
                h[.contentType] = "application/json"
                return Response(
                    status: .init(code: code), headers: h,
                    body: .init(byteBuffer: ByteBuffer(string: PHPJSONText.error(error))))
            }
            let (status, h, bytes) = try await forward(req, body: body)
            return Response(status: status, headers: h, body: .init(byteBuffer: bytes))
        case .trickle(let interval):
            let (status, h, bytes) = try await forward(request)
            let chunks = bytes.readableBytesView.map { ByteBuffer(bytes: [$0]) }
            return Response(
                status: status, headers: h,
                body: ResponseBody { writer in
                    for c in chunks {
                        try await writer.write(c)
                        try await self.hold(interval)
                    }
                    try await writer.finish(nil)
                })
        case .php:
            var (status, h, bytes) = try await forward(request)
            h[.connection] = "close"
            if status == .notFound && request.uri.path.hasSuffix("/tasks/claim") {
                return Response(
                    status: .internalServerError, headers: h,
                    body: .init(byteBuffer: ByteBuffer(string: PHPJSONText.error("There is no active transaction"))))
            }
            if let v = try? JSONParser.parse(Array(bytes.readableBytesView)) {
                bytes = ByteBuffer(string: PHPJSON.encode(Self.stringIDs(v)))
            }
            return Response(status: status, headers: h, body: .init(byteBuffer: bytes))
        case .pass, .swallowResponse:
            let (status, h, bytes) = try await forward(request)
            if mode == .swallowResponse {
                // The server has acted on the request; the caller never hears.
                try await hold(.seconds(3600))
            }
            return Response(status: status, headers: h, body: .init(byteBuffer: bytes))
        }
    }
}

extension FaultProxy {
    /// Every integer `id` and `task_type_id`, at any depth, as a string.
    static func stringIDs(_ v: JSONValue) -> JSONValue {
        switch v {
        case .object(let members):
            return .object(
                members.map { m in
                    if ["id", "task_type_id"].contains(m.key), case .int(let i) = m.value {
                        return JSONMember(m.key, .string(String(i)))
                    }
                    return JSONMember(m.key, stringIDs(m.value))
                })
        case .array(let items): return .array(items.map(stringIDs))
        default: return v
        }
    }
}

/// A plain GET for tests of the bridge's own endpoints (/metrics, /health).
public enum HTTPFetch {
    public static func text(_ url: String) async throws -> String {
        var request = HTTPClientRequest(url: url)
        request.method = .GET
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(5))
        let body = try await response.body.collect(upTo: 8 << 20)
        return String(buffer: body)
    }
}

enum PHPJSONText {
    static func error(_ message: String) -> String {
        PHPJSON.encode(.object([JSONMember("success", .bool(false)), JSONMember("error", .string(message))]))
    }
}
