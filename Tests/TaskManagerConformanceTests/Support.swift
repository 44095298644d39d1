import AsyncHTTPClient
import Foundation
import GRDB
import NIOCore
import NIOHTTP1
import TaskBridgeTesting
import TaskManagerClient
import TaskManagerModel
import Testing

/// A response as it came off the wire: the assertions here are about bytes,
/// header names and key order, which the typed client deliberately hides.
struct RawResponse: Sendable {
    var status: Int
    var headers: HTTPHeaders
    var body: [UInt8]

    var text: String { String(decoding: body, as: UTF8.self) }
    var json: JSONValue? { try? JSONParser.parse(body) }
    var data: JSONValue? { json?["data"] }
    var error: String? { json?["error"]?.stringValue }
    var details: [String]? { json?["details"]?.arrayValue?.compactMap(\.stringValue) }
    func header(_ name: String) -> String? { headers.first(name: name) }
}

enum RawBody: Sendable {
    case none
    case bytes([UInt8])
    /// Sent chunked, without Content-Length, so only the server's own byte
    /// count can catch an oversized body.
    case chunked([UInt8])

    /// Whole floats keep their `.0`, so a test can send `5.0` and mean it.
    static func json(_ value: JSONValue) -> RawBody { .text(PHPJSON.encodeWire(value)) }
    static func text(_ s: String) -> RawBody { .bytes(Array(s.utf8)) }
}

enum Auth: Sendable {
    case harnessKey
    case none
    case header(name: String, value: String)
}

extension TaskManagerHarness {
    /// One request with exactly the given method, path, headers and body.
    /// `path` is appended to `http://127.0.0.1:<port>` as is (no encoding).
    func raw(
        _ method: HTTPMethod, _ path: String, body: RawBody = .none, auth: Auth = .harnessKey,
        headers extra: [(String, String)] = []
    ) async throws -> RawResponse {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
        request.method = method
        // A fresh connection per request: the harness servers come and go on
        // reused ports, and a pooled keep-alive socket to a dead one would
        // make a test fail for the wrong reason.
        request.headers.add(name: "Connection", value: "close")
        switch auth {
        case .harnessKey: request.headers.add(name: "X-API-Key", value: apiKey)
        case .none: break
        case .header(let name, let value): request.headers.add(name: name, value: value)
        }
        for (k, v) in extra { request.headers.add(name: k, value: v) }
        switch body {
        case .none: break
        case .bytes(let b):
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: b))
        case .chunked(let b):
            request.headers.add(name: "Content-Type", value: "application/json")
            let chunks = stride(from: 0, to: b.count, by: 256).map { ByteBuffer(bytes: b[$0..<min($0 + 256, b.count)]) }
            request.body = .stream(chunks.async, length: .unknown)
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        let bytes = try await response.body.collect(upTo: 8 << 20)
        return RawResponse(
            status: Int(response.status.code), headers: response.headers, body: Array(bytes.readableBytesView))
    }

    func rawJSON(
        _ method: HTTPMethod, _ path: String, _ body: JSONValue, auth: Auth = .harnessKey
    ) async throws -> RawResponse {
        try await raw(method, path, body: .json(body), auth: auth)
    }

    /// Registers a type whose schema accepts any object.
    @discardableResult
    func registerOpenType(_ name: String = "test.a") async throws -> Int64 {
        try await client.registerTaskType(name: name, version: "1.0.0", paramSchema: ["type": "object"]).id
    }

    /// The number of stored tasks, read over HTTP like any client would.
    func taskCount() async throws -> Int {
        let r = try await raw(.GET, "/api/tasks?limit=100000")
        return Int(try #require(r.data?["count"]?.intValue))
    }

    /// Direct SQL on the server's SQLite file, for states the API cannot
    /// produce on demand (a deactivated type, identical timestamps).
    func sql(_ statement: String, _ arguments: StatementArguments = []) async throws {
        try await server.store.pool.write { db in try db.execute(sql: statement, arguments: arguments) }
    }
}

func keys(_ value: JSONValue?) -> [String] {
    value?.objectMembers?.map(\.key) ?? []
}

extension Array where Element: Sendable {
    var async: AsyncSyncSequence<Self> { AsyncSyncSequence(self) }
}

/// An array as an `AsyncSequence`, for streamed request bodies.
struct AsyncSyncSequence<Base: Sequence & Sendable>: AsyncSequence, Sendable where Base.Element: Sendable {
    let base: Base
    init(_ base: Base) { self.base = base }
    struct AsyncIterator: AsyncIteratorProtocol {
        var iterator: Base.Iterator
        mutating func next() async -> Base.Element? { iterator.next() }
    }
    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(iterator: base.makeIterator()) }
}

/// `YYYY-MM-DDTHH:MM:SS+00:00`, PHP's `date('c')`.
func isISOTimestamp(_ s: String?) -> Bool {
    guard let s else { return false }
    return s.wholeMatch(of: /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}/) != nil
}

func isNow(_ epoch: Int64?, tolerance: Int64 = 5) -> Bool {
    guard let epoch else { return false }
    return abs(epoch - Int64(Date().timeIntervalSince1970)) <= tolerance
}

/// The validation error a client call should fail with.
func expectValidation(
    _ message: String, details: [String] = [], sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () async throws -> some Any
) async {
    await expectError(.validation(message, details: details), sourceLocation: sourceLocation, body)
}

func expectError(
    _ expected: TaskManagerError, sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () async throws -> some Any
) async {
    do {
        _ = try await body()
        Issue.record("expected \(expected)", sourceLocation: sourceLocation)
    } catch let error as TaskManagerError {
        #expect(error == expected, sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected \(expected), got \(error)", sourceLocation: sourceLocation)
    }
}
