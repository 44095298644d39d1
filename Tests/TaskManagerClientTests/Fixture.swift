import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization
import TaskManagerClient
import TaskManagerModel

/// A request as the fixture received it.
struct Recorded: Sendable {
    var method: String
    var path: String
    var apiKey: String?
    var contentType: String?
    var body: [UInt8]
    var text: String { String(decoding: body, as: UTF8.self) }
}

/// A scripted answer: status, content type, extra headers and raw body text.
struct Canned: Sendable {
    var status: Int
    var contentType: String
    var headers: [(String, String)] = []
    var body: String

    static func json(_ status: Int = 200, _ body: String, headers: [(String, String)] = []) -> Canned {
        Canned(status: status, contentType: "application/json", headers: headers, body: body)
    }

    /// The PHP middleware's answers (401/413/429) go out as text/html.
    static func html(_ status: Int, _ body: String, headers: [(String, String)] = []) -> Canned {
        Canned(status: status, contentType: "text/html; charset=UTF-8", headers: headers, body: body)
    }

    /// `{"success":true,"message":"Success","data":<data>,"timestamp":...}`
    static func success(_ data: String) -> Canned {
        .json(200, #"{"success":true,"message":"Success","data":\#(data),"timestamp":1795958918}"#)
    }

    static func failure(_ status: Int, _ error: String) -> Canned {
        .json(status, #"{"success":false,"error":"\#(error)","timestamp":1795958918}"#)
    }

    static let notFoundRoute = failure(404, "Endpoint not found")
}

/// A real HTTP listener on 127.0.0.1 that replays what the PHP TaskManager
/// was observed to answer (spec section 5), and records what it was sent.
final class Fixture: Sendable {
    /// Called with the request and how many requests (this one included) the
    /// fixture has seen for the same method and path.
    typealias Handler = @Sendable (Recorded, Int) async -> Canned

    let port: Int
    private let group: ServiceGroup
    private let task: Task<Void, any Error>
    private let shared: Shared

    private init(port: Int, group: ServiceGroup, task: Task<Void, any Error>, shared: Shared) {
        self.port = port
        self.group = group
        self.task = task
        self.shared = shared
    }

    static func start(_ handler: @escaping Handler) async throws -> Fixture {
        let box = Shared()
        let responder = CallbackResponder<BasicRequestContext> { request, _ in
            let body = try await request.body.collect(upTo: 16 << 20)
            let recorded = Recorded(
                method: request.method.rawValue, path: request.uri.path,
                apiKey: request.headers[HTTPField.Name("X-API-Key")!], contentType: request.headers[.contentType],
                body: Array(body.readableBytesView))
            let n = box.record(recorded)
            let canned = await handler(recorded, n)
            var headers = HTTPFields()
            headers[.contentType] = canned.contentType
            for (k, v) in canned.headers { headers[HTTPField.Name(k)!] = v }
            return Response(
                status: .init(code: canned.status), headers: headers,
                body: .init(byteBuffer: ByteBuffer(string: canned.body)))
        }
        var logger = Logger(label: "fixture")
        logger.logLevel = .warning
        let (stream, continuation) = AsyncStream<Int>.makeStream()
        let app = Application(
            responder: responder, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in
                continuation.yield(channel.localAddress?.port ?? 0)
                continuation.finish()
            }, logger: logger)
        let group = ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: [], logger: logger))
        let task = Task {
            defer { continuation.finish() }
            try await group.run()
        }
        var port: Int?
        for await p in stream { port = p }
        guard let port else {
            try await task.value
            throw FixtureError.didNotStart
        }
        return Fixture(port: port, group: group, task: task, shared: box)
    }

    /// Shared with the responder, which exists before the fixture does.
    private final class Shared: Sendable {
        let log = Mutex<[Recorded]>([])
        func record(_ r: Recorded) -> Int {
            log.withLock { l in
                l.append(r)
                return l.filter { $0.method == r.method && $0.path == r.path }.count
            }
        }
    }

    enum FixtureError: Error { case didNotStart }

    var requests: [Recorded] { shared.log.withLock { $0 } }

    func count(_ method: String, _ path: String) -> Int {
        requests.filter { $0.method == method && $0.path == path }.count
    }

    var baseURL: String { "http://127.0.0.1:\(port)/api" }

    /// A client with fast retries, so retry tests take milliseconds.
    func client(
        apiKey: String = "fixture-key", configure: (inout ClientConfiguration) -> Void = { _ in }
    ) throws -> TaskManagerClient {
        var c = try ClientConfiguration(baseURL: baseURL, apiKey: apiKey)
        c.retryBaseDelay = .milliseconds(5)
        configure(&c)
        return TaskManagerClient(configuration: c)
    }

    func stop() async {
        await group.triggerGracefulShutdown()
        _ = try? await task.value
    }

    /// Runs `body` with a fixture and a client for it; always cleans up.
    static func with(
        _ handler: @escaping Handler, configure: (inout ClientConfiguration) -> Void = { _ in },
        _ body: (Fixture, TaskManagerClient) async throws -> Void
    ) async throws {
        let fixture = try await start(handler)
        let client = try fixture.client(configure: configure)
        do {
            try await body(fixture, client)
        } catch {
            await client.shutdown()
            await fixture.stop()
            throw error
        }
        await client.shutdown()
        await fixture.stop()
    }
}

/// Lets a test release a handler it made hang, so that shutting the fixture
/// down does not wait for the handler's own deadline.
final class Latch: Sendable {
    private let opened = Mutex(false)
    func open() { opened.withLock { $0 = true } }
    var isOpen: Bool { opened.withLock { $0 } }

    /// Waits until opened or until `limit` passed.
    func wait(limit: Duration) async {
        let deadline = ContinuousClock.now + limit
        while !isOpen && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(10)) }
    }
}
