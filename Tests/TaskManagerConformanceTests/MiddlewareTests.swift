import Foundation
import NIOHTTP1
import TaskBridgeTesting
import TaskManagerClient
import TaskManagerModel
import TaskManagerServer
import Testing
import TestSlots

@Suite("Auth, size limit, rate limit, CORS and routing (spec 1, 3)", .heavy)
struct MiddlewareTests {
    static let unauthorizedMessage = "Invalid or missing API key. Include X-API-Key header with your request."

    @Test func missingOrWrongKeyIs401InTheMiddlewareShape() async throws {
        try await TaskManagerHarness.with { h in
            let attempts: [(Auth, String)] = [
                (.none, "/api/tasks"),
                (.header(name: "X-API-Key", value: "wrong"), "/api/tasks"),
                (.header(name: "X-API-Key", value: h.apiKey + "x"), "/api/tasks"),
                (.header(name: "X-API-Key", value: ""), "/api/task-types"),
                // Authorization is allowed by CORS but not accepted for auth.
                (.header(name: "Authorization", value: "Bearer \(h.apiKey)"), "/api/tasks"),
                // Auth runs before routing.
                (.none, "/api/no-such-route"),
            ]
            for (auth, path) in attempts {
                let r = try await h.raw(.GET, path, auth: auth)
                #expect(r.status == 401, "\(auth) \(path)")
                #expect(r.header("Content-Type") == "text/html; charset=UTF-8")
                #expect(keys(r.json) == ["error", "message", "timestamp"])
                #expect(r.json?["error"] == "Unauthorized" && r.json?["message"] == .string(Self.unauthorizedMessage))
                #expect(isISOTimestamp(r.json?["timestamp"]?.stringValue))
            }
            let bad = try h.makeClient(apiKey: "wrong-key")
            await expectError(.unauthorized(Self.unauthorizedMessage)) { try await bad.listTasks() }
            await bad.shutdown()
        }
    }

    @Test func keyHeaderNameIsCaseInsensitive() async throws {
        try await TaskManagerHarness.with { h in
            for name in ["x-api-key", "X-API-KEY", "x-Api-Key"] {
                let r = try await h.raw(.GET, "/api/tasks", auth: .header(name: name, value: h.apiKey))
                #expect(r.status == 200, "\(name)")
            }
        }
    }

    @Test func healthAndOpenAPINeedNoKey() async throws {
        try await TaskManagerHarness.with { h in
            #expect(try await h.raw(.GET, "/api/health", auth: .none).status == 200)
            #expect(
                try await h.raw(.GET, "/api/health", auth: .header(name: "X-API-Key", value: "wrong")).status == 200)
            let doc = try await h.raw(.GET, "/api/openapi.json", auth: .none)
            #expect(doc.status == 200)
            #expect(doc.header("Content-Type") == "application/json")
            let json = try #require(doc.json)
            #expect(json["openapi"]?.stringValue?.hasPrefix("3.") == true)
            #expect(json["servers"] == [["url": "/api"]])
            let paths = keys(json["paths"])
            for p in [
                "/health", "/task-types/register", "/task-types/{name}", "/task-types", "/tasks", "/tasks/claim",
                "/tasks/{id}",
                "/tasks/{id}/complete", "/tasks/{id}/progress",
            ] {
                #expect(paths.contains(p), "\(p)")
            }
            #expect(json["components"]?["schemas"]?["Envelope"] != nil)
            #expect(json["components"]?["securitySchemes"]?["apiKey"]?["name"] == "X-API-Key")
            #expect(!doc.text.contains("\"duplicate\""))
        }
    }

    @Test func bodyAboveMaxRequestSizeIs413BeforeAuth() async throws {
        try await TaskManagerHarness.with(configure: { $0.maxRequestSize = 1024 }) { h in
            try await h.registerOpenType()
            let big = Array(
                PHPJSON.encode(["type": "test.a", "params": ["blob": .string(String(repeating: "x", count: 2000))]])
                    .utf8)
            for (body, auth) in [
                (RawBody.bytes(big), Auth.harnessKey), (.bytes(big), .none), (.chunked(big), .harnessKey),
            ] {
                let r = try await h.raw(.POST, "/api/tasks", body: body, auth: auth)
                #expect(r.status == 413, "\(auth)")
                #expect(r.header("Content-Type") == "text/html; charset=UTF-8")
                #expect(keys(r.json) == ["error", "message", "timestamp"])
                #expect(r.json?["error"] == "Request Too Large")
                #expect(
                    r.json?["message"]?.stringValue?.hasPrefix("Request body exceeds maximum allowed size of ") == true)
                #expect(isISOTimestamp(r.json?["timestamp"]?.stringValue))
            }
            let message = try #require(
                try await h.raw(.POST, "/api/tasks", body: .bytes(big)).json?["message"]?.stringValue)
            await expectError(.payloadTooLarge(message)) {
                try await h.client.createTask(
                    type: "test.a", params: ["blob": .string(String(repeating: "x", count: 2000))])
            }
            // The unread body does not poison the client's kept-alive connection.
            for _ in 0..<3 { #expect(try await h.client.health()["status"] == "healthy") }
            // A body of exactly the limit is fine.
            let prefix = #"{"type":"test.a","params":{"blob":""#
            let exact = Array((prefix + String(repeating: "y", count: 1024 - prefix.utf8.count - 3) + "\"}}").utf8)
            #expect(exact.count == 1024)
            #expect(try await h.raw(.POST, "/api/tasks", body: .bytes(exact)).status == 200)
            #expect(try await h.raw(.POST, "/api/tasks", body: .chunked(exact)).status == 200)
            #expect(try await h.taskCount() == 1)
        }
    }

    @Test func defaultLimitIsOneMegabyte() async throws {
        try await TaskManagerHarness.with { h in
            try await h.registerOpenType()
            let prefix = #"{"type":"test.a","params":{"blob":""#
            let filler = String(repeating: "x", count: 1_048_577 - prefix.utf8.count - 3)
            let body = Array((prefix + filler + "\"}}").utf8)
            #expect(body.count == 1_048_577)
            let r = try await h.raw(.POST, "/api/tasks", body: .bytes(body))
            #expect(r.status == 413)
            #expect(r.json?["message"] == "Request body exceeds maximum allowed size of 1 MB")
            let chunked = try await h.raw(.POST, "/api/tasks", body: .chunked(body))
            #expect(chunked.status == 413)
            #expect(try await h.taskCount() == 0)
        }
    }

    @Test func rateLimitAnswers429WithRetryAfter() async throws {
        try await TaskManagerHarness.with(configure: { $0.rateLimit = .init(maxRequests: 3, window: 60) }) { h in
            let start = Int64(Date().timeIntervalSince1970)
            for expectedRemaining in [2, 1, 0] {
                let r = try await h.raw(.GET, "/api/health", auth: .none)
                #expect(r.status == 200)
                #expect(r.header("X-RateLimit-Limit") == "3")
                #expect(r.header("X-RateLimit-Remaining") == String(expectedRemaining))
                let reset = Int64(r.header("X-RateLimit-Reset") ?? "") ?? 0
                // The window began between `start` and now, however slow the machine.
                #expect(reset >= start + 59 && reset <= Int64(Date().timeIntervalSince1970) + 61)
            }
            let limited = try await h.raw(.GET, "/api/health", auth: .none)
            #expect(limited.status == 429)
            #expect(limited.header("Content-Type") == "text/html; charset=UTF-8")
            #expect(keys(limited.json) == ["error", "message", "retry_after", "limit", "window", "timestamp"])
            let retryAfter = try #require(limited.json?["retry_after"]?.intValue)
            #expect(retryAfter >= 1 && retryAfter <= 60)
            #expect(limited.header("Retry-After") == String(retryAfter))
            #expect(limited.header("X-RateLimit-Remaining") == "0")
            #expect(limited.json?["error"] == "Too Many Requests")
            #expect(
                limited.json?["message"] == .string("Rate limit exceeded. Please try again in \(retryAfter) seconds."))
            #expect(limited.json?["limit"] == 3 && limited.json?["window"] == 60)
            #expect(isISOTimestamp(limited.json?["timestamp"]?.stringValue))

            // The window is per path, and it counts before auth.
            let other = try await h.raw(.GET, "/api/tasks", auth: .none)
            #expect(other.status == 401 && other.header("X-RateLimit-Remaining") == "2")
            // openapi.json is outside the limiter.
            for _ in 0..<4 { #expect(try await h.raw(.GET, "/api/openapi.json", auth: .none).status == 200) }

            // A wait this long is handed to the caller instead of slept through.
            try await h.registerOpenType()
            // `/tasks` already counted the unauthenticated GET above: the
            // window is per path, whatever the method.
            for _ in 0..<2 { _ = try await h.client.createTask(type: "test.a", params: ["a": 1]) }
            do throws(TaskManagerError) {
                _ = try await h.client.createTask(type: "test.a", params: ["a": 1])
                Issue.record("expected 429")
            } catch {
                guard case .rateLimited(let after?, let message) = error else {
                    Issue.record("expected .rateLimited, got \(error)")
                    return
                }
                // Longer than the client's maxRetryAfter: handed back, not slept through.
                #expect(after > 5 && message.hasPrefix("Rate limit exceeded."))
            }
        }
    }

    @Test func rateLimitWindowIsPerClientIPAndResets() async throws {
        let clock = ServerClock()
        try await TaskManagerHarness.with(configure: {
            $0.rateLimit = .init(maxRequests: 1, window: 60); $0.clock = clock
        }) { h in
            let a = [("X-Forwarded-For", "203.0.113.7, 10.0.0.1")]
            #expect(try await h.raw(.GET, "/api/health", headers: a).status == 200)
            let limited = try await h.raw(.GET, "/api/health", headers: a)
            #expect(limited.status == 429 && Int(limited.header("Retry-After") ?? "") ?? 0 >= 1)
            // Another client (by the first X-Forwarded-For entry) has its own window.
            #expect(try await h.raw(.GET, "/api/health", headers: [("X-Forwarded-For", "203.0.113.8")]).status == 200)
            #expect(try await h.raw(.GET, "/api/health", headers: [("X-Real-IP", "203.0.113.9")]).status == 200)
            // The fixed window ends and the first client is served again.
            clock.advance(by: 61)
            #expect(try await h.raw(.GET, "/api/health", headers: a).status == 200)
        }
    }

    @Test func securityHeadersWhenEnabled() async throws {
        try await TaskManagerHarness.with(configure: { $0.enableSecurityHeaders = true }) { h in
            for r in [try await h.raw(.GET, "/api/tasks"), try await h.raw(.GET, "/api/tasks", auth: .none)] {
                #expect(r.header("X-Frame-Options") == "DENY")
                #expect(r.header("X-Content-Type-Options") == "nosniff")
                #expect(r.header("X-XSS-Protection") == "1; mode=block")
                #expect(r.header("Referrer-Policy") == "strict-origin-when-cross-origin")
                #expect(r.header("Content-Security-Policy") == "default-src 'none'; frame-ancestors 'none'")
                #expect(r.header("Permissions-Policy") == "geolocation=(), microphone=(), camera=()")
            }
        }
        try await TaskManagerHarness.with { h in
            let r = try await h.raw(.GET, "/api/tasks")
            #expect(r.header("X-Frame-Options") == nil)
        }
    }

    @Test func corsAllowsAnyOriginByDefault() async throws {
        try await TaskManagerHarness.with { h in
            let preflight = try await h.raw(
                .OPTIONS, "/api/tasks", auth: .none,
                headers: [("Origin", "https://ui.example"), ("Access-Control-Request-Method", "POST")])
            #expect(preflight.status == 200)
            #expect(preflight.body.isEmpty)
            #expect(preflight.header("Access-Control-Allow-Origin") == "*")
            #expect(preflight.header("Access-Control-Allow-Methods") == "GET, POST, PUT, DELETE, OPTIONS")
            #expect(preflight.header("Access-Control-Allow-Headers") == "Content-Type, Authorization, X-API-Key")
            // OPTIONS is answered for any path, before routing.
            #expect(try await h.raw(.OPTIONS, "/api/whatever", auth: .none).status == 200)

            for (path, auth) in [("/api/tasks", Auth.harnessKey), ("/api/tasks", .none), ("/api/nope", .harnessKey)] {
                let r = try await h.raw(.GET, path, auth: auth, headers: [("Origin", "https://ui.example")])
                #expect(r.header("Access-Control-Allow-Origin") == "*", "\(path)")
                #expect(r.header("Access-Control-Allow-Methods") == "GET, POST, PUT, DELETE, OPTIONS")
                #expect(r.header("Vary") == nil)
            }
        }
    }

    @Test func corsEchoesOnlyConfiguredOrigins() async throws {
        try await TaskManagerHarness.with(configure: {
            $0.corsAllowedOrigins = ["https://a.example", "https://b.example"]
        }) { h in
            for method in [HTTPMethod.OPTIONS, .GET] {
                let allowed = try await h.raw(method, "/api/tasks", headers: [("Origin", "https://b.example")])
                #expect(allowed.header("Access-Control-Allow-Origin") == "https://b.example")
                #expect(allowed.header("Vary") == "Origin")
                let denied = try await h.raw(method, "/api/tasks", headers: [("Origin", "https://evil.example")])
                #expect(denied.header("Access-Control-Allow-Origin") == nil)
                #expect(denied.header("Access-Control-Allow-Methods") == "GET, POST, PUT, DELETE, OPTIONS")
                let none = try await h.raw(method, "/api/tasks")
                #expect(none.header("Access-Control-Allow-Origin") == nil)
            }
        }
    }

    @Test func pathNormalisationAndUnknownRoutes() async throws {
        try await TaskManagerHarness.with { h in
            try await h.registerOpenType()
            let id = try await h.client.createTask(type: "test.a", params: ["a": 1]).id
            for path in [
                "/api/tasks/", "/api/tasks//", "/api/tasks?status=pending", "/api/tasks/?limit=5", "/api/api/tasks",
            ] {
                let r = try await h.raw(.GET, path)
                #expect(r.status == 200 && r.data?["count"] == 1, "\(path)")
            }
            #expect(try await h.raw(.GET, "/api/health/", auth: .none).status == 200)
            #expect(try await h.raw(.GET, "/api/tasks/\(id)/").data?["id"] == .int(id))
            let created = try await h.rawJSON(.POST, "/api/tasks/", ["type": "test.a", "params": ["a": 2]])
            #expect(created.status == 200 && created.data?["status"] == "pending")

            let unknown: [(HTTPMethod, String, RawBody)] = [
                (.GET, "/api/nope", .none),
                (.GET, "/api", .none),
                (.GET, "/api/tasks/1/complete", .none),
                (.DELETE, "/api/tasks/\(id)", .none),
                (.PUT, "/api/tasks", .json(["type": "test.a", "params": ["a": 1]])),
                (.PATCH, "/api/tasks/\(id)", .json(["status": "failed"])),
                (.POST, "/api/tasks/\(id)/fail", .json(["worker_id": "w", "error": "x"])),
                (.POST, "/api/task-types", .json(["name": "x"])),
                (.GET, "/api/tasks/\(id)/progress/extra", .none),
            ]
            for (method, path, body) in unknown {
                let r = try await h.raw(method, path, body: body)
                #expect(r.status == 404, "\(method) \(path)")
                #expect(r.error == "Endpoint not found", "\(method) \(path)")
                #expect(r.header("Content-Type") == "application/json")
            }
            #expect(try await h.taskCount() == 2)
        }
    }
}
