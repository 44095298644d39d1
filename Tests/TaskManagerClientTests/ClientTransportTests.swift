import Foundation
import Synchronization
import TaskBridgeTesting
@testable import TaskManagerClient
import TaskManagerModel
import Testing

@Suite("Client: retries, rate limits, transport errors, redaction")
struct ClientTransportTests {
    static let created = Canned.success(
        #"{"id":"3","type":"t","status":"pending","dedupe_key":"k","message":"Task created successfully"}"#)

    static func rateLimited(_ seconds: Int) -> Canned {
        .html(
            429,
            #"""
            {"error":"Too Many Requests","message":"Rate limit exceeded. Please try again in \#(seconds) \#
            seconds.","retry_after":\#(seconds),"limit":100,"window":60,"timestamp":"2026-11-29T13:28:38+00:00"}
            """#,
            headers: [("Retry-After", String(seconds)), ("X-RateLimit-Limit", "100"), ("X-RateLimit-Remaining", "0")])
    }

    @Test func shortRetryAfterIsWaitedOutForCreate() async throws {
        try await Fixture.with({ _, n in n == 1 ? Self.rateLimited(1) : Self.created }) { fixture, client in
            let clock = ContinuousClock()
            let start = clock.now
            let result = try await client.createTask(type: "t", params: ["a": 1])
            #expect(result.id == 3)
            #expect(fixture.count("POST", "/api/tasks") == 2)
            // Retry-After was honoured (with at most 20 % jitter), not the 5 ms backoff.
            #expect(clock.now - start >= .milliseconds(750))
        }
    }

    @Test func longRetryAfterSurfacesAsRateLimited() async throws {
        try await Fixture.with({ _, _ in Self.rateLimited(120) }) { fixture, client in
            await #expect(
                throws: TaskManagerError.rateLimited(
                    retryAfter: 120, message: "Rate limit exceeded. Please try again in 120 seconds.")
            ) {
                try await client.createTask(type: "t", params: ["a": 1])
            }
            // Handed back at once: one request, no retry slept through.
            #expect(fixture.count("POST", "/api/tasks") == 1)
        }
    }

    @Test func rateLimitedClaimIsNotRetried() async throws {
        try await Fixture.with({ _, _ in Self.rateLimited(1) }) { fixture, client in
            await #expect(
                throws: TaskManagerError.rateLimited(
                    retryAfter: 1, message: "Rate limit exceeded. Please try again in 1 seconds.")
            ) {
                try await client.claimTask(workerID: "w", taskTypeID: 1)
            }
            #expect(fixture.count("POST", "/api/tasks/claim") == 1)
        }
    }

    @Test func serverErrorsOnGetsAreRetried() async throws {
        try await Fixture.with({ r, n in
            switch r.path {
            case "/api/tasks/7":
                return n < 3
                    ? .failure(503, "Service Unavailable")
                    : .success(
                        #"""
                        {"id":7,"type":"t","status":"pending","params":{"a":1},"result":null,"error_message":null,\#
                        "priority":0,"progress":0,"attempts":0,"claimed_by":null,"claimed_at":null,\#
                        "completed_at":null,"created_at":"2026-11-29 13:28:43"}
                        """#
                    )
            default:
                return .failure(500, "Internal server error")
            }
        }) { fixture, client in
            let task = try await client.getTask(id: 7)
            #expect(task.id == 7 && task.status == .pending)
            #expect(fixture.count("GET", "/api/tasks/7") == 3)

            // Gives up after maxAttempts and reports the last answer.
            await #expect(throws: TaskManagerError.server(status: 500, message: "Internal server error")) {
                try await client.listTasks()
            }
            #expect(fixture.count("GET", "/api/tasks") == 3)
        }
    }

    @Test func claimCompleteAndProgressAreNeverRetried() async throws {
        try await Fixture.with({ _, _ in .failure(500, "SQLSTATE[40001]: Serialization failure: 1213 Deadlock found") })
        { fixture, client in
            let expected = TaskManagerError.server(
                status: 500, message: "SQLSTATE[40001]: Serialization failure: 1213 Deadlock found")
            await #expect(throws: expected) { try await client.claimTask(workerID: "w", taskTypeID: 1) }
            await #expect(throws: expected) { try await client.completeTask(id: 5, workerID: "w", success: true) }
            await #expect(throws: expected) { try await client.updateProgress(id: 5, workerID: "w", progress: 5) }
            #expect(fixture.count("POST", "/api/tasks/claim") == 1)
            #expect(fixture.count("POST", "/api/tasks/5/complete") == 1)
            #expect(fixture.count("POST", "/api/tasks/5/progress") == 1)
            // Creates are deduped by the server, so they may be repeated.
            await #expect(throws: expected) { try await client.createTask(type: "t", params: ["a": 1]) }
            #expect(fixture.count("POST", "/api/tasks") == 3)
        }
    }

    @Test func permanentRejectionsAreNotRetried() async throws {
        try await Fixture.with({ _, _ in .failure(404, "Task type not found") }) { fixture, client in
            await #expect(throws: TaskManagerError.notFound("Task type not found")) {
                try await client.createTask(type: "t", params: ["a": 1])
            }
            #expect(fixture.count("POST", "/api/tasks") == 1)
        }
    }

    @Test func connectionRefusedIsTransport() async throws {
        let fixture = try await Fixture.start { _, _ in Self.created }
        // AsyncHTTPClient keeps retrying a refused connection until the
        // connect timeout, so the timeout bounds how long this takes.
        let client = try fixture.client { $0.connectTimeout = .milliseconds(250) }
        await fixture.stop()
        do throws(TaskManagerError) {
            _ = try await client.createTask(type: "t", params: ["a": 1])
            Issue.record("expected .transport")
        } catch {
            guard case .transport = error else {
                Issue.record("expected .transport, got \(error)")
                await client.shutdown()
                return
            }
            #expect(error.isTransient)
        }
        do throws(TaskManagerError) {
            _ = try await client.claimTask(workerID: "w", taskTypeID: 1)
            Issue.record("expected .transport")
        } catch {
            guard case .transport = error else {
                Issue.record("expected .transport, got \(error)")
                await client.shutdown()
                return
            }
        }
        await client.shutdown()
    }

    /// The gate admits `limit` bodies; the rest wait in line and each goes
    /// in as one leaves.
    @Test func theGateHoldsItsLimit() async throws {
        final class Inside: Sendable {
            let counts = Mutex((now: 0, most: 0))
            func enter() {
                counts.withLock {
                    $0.now += 1
                    $0.most = max($0.most, $0.now)
                }
            }
            func leave() { counts.withLock { $0.now -= 1 } }
            var now: Int { counts.withLock { $0.now } }
            var most: Int { counts.withLock { $0.most } }
        }
        let gate = ConcurrencyGate(limit: 2)
        let inside = Inside()
        let latch = Latch()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<6 {
                group.addTask {
                    try await gate.run {
                        inside.enter()
                        await latch.wait(limit: .seconds(30))
                        inside.leave()
                    }
                }
            }
            let lined = try await eventually(timeout: .seconds(30), interval: .milliseconds(5)) {
                gate.waiting == 4 && inside.now == 2
            }
            #expect(lined, "two inside, four waiting")
            latch.open()
            try await group.waitForAll()
        }
        #expect(inside.most == 2)
        #expect(gate.waiting == 0)
    }

    @Test func subSecondRequestTimeoutIsHonoured() async throws {
        let latch = Latch()
        try await Fixture.with(
            { r, _ in
                if r.path == "/api/tasks" { await latch.wait(limit: .seconds(5)) }
                return .success(#"{"status":"healthy","timestamp":1795958911,"database":"connected"}"#)
            },
            configure: {
                $0.requestTimeout = .milliseconds(400)
                $0.maxAttempts = 1
            }
        ) { _, client in
            // Sub-second timeouts are not rounded down to 0 s (which would fail
            // every request): checked on the conversion itself, since a live
            // request that must finish within 400 ms depends on the machine.
            #expect(TaskManagerClient.timeAmount(.milliseconds(400)) == .milliseconds(400))
            #expect(TaskManagerClient.timeAmount(.seconds(2.5)) == .milliseconds(2500))

            // The handler answers only when the latch opens (at the latest after
            // 5 s): an answer here means the timeout was not honoured.
            do throws(TaskManagerError) {
                _ = try await client.listTasks()
                Issue.record("expected a timeout")
            } catch {
                guard case .transport = error else {
                    Issue.record("expected .transport, got \(error)")
                    latch.open()
                    return
                }
            }
            latch.open()
        }
    }

    /// Where the fixture pads, the echoed key starts 10 characters before the
    /// 200-character snippet cut, so a cut made before redaction would leave
    /// "SEKRET-api" behind.
    static func padding(after prefix: String) -> String { String(repeating: "p", count: 190 - prefix.count) }

    @Test func errorDescriptionsNeverContainTheKey() async throws {
        let key = "SEKRET-api-key-0123456789"
        try await Fixture.with(
            { r, _ in
                let given = r.apiKey ?? ""
                switch r.path {
                case "/api/health":
                    return .html(401, #"{"error":"Unauthorized","message":"Invalid API key \#(given)"}"#)
                case "/api/tasks":
                    return .json(400, #"{"success":false,"error":"Bad key \#(given)","details":["key=\#(given)"]}"#)
                case "/api/tasks/claim": return .failure(500, "SQLSTATE: near '\(given)'")
                case "/api/tasks/1/complete":
                    return .html(502, "<html>" + Self.padding(after: "<html>") + given + "</html>")
                case "/api/tasks/1/progress": return .failure(403, "Task is claimed by \(given)")
                case "/api/task-types/register":
                    let prefix = #"{"unexpected":""#
                    return .success(prefix + Self.padding(after: prefix) + given + #""}"#)
                case "/api/task-types": return .success(#"{"rows":"\#(given)"}"#)
                case "/api/tasks/1":
                    return .html(
                        429, #"{"error":"Too Many Requests","message":"slow down \#(given)"}"#,
                        headers: [("Retry-After", "600")])
                default: return .failure(404, "No route for \(given)")
                }
            }, configure: { $0.apiKey = key }
        ) { fixture, client in
            var errors: [TaskManagerError] = []
            func capture(_ body: () async throws -> some Any) async {
                do {
                    _ = try await body()
                } catch let error as TaskManagerError {
                    errors.append(error)
                } catch {
                    Issue.record("unexpected \(error)")
                }
            }
            await capture { try await client.health() }
            await capture { try await client.createTask(type: "t", params: ["a": 1]) }
            await capture { try await client.claimTask(workerID: "w", taskTypeID: 1) }
            await capture { try await client.completeTask(id: 1, workerID: "w", success: true) }
            await capture { try await client.updateProgress(id: 1, workerID: "w", progress: 1) }
            await capture {
                try await client.registerTaskType(name: "t", version: "1", paramSchema: ["type": "object"])
            }
            await capture { try await client.listTaskTypes() }
            await capture { try await client.getTask(id: 1) }
            await capture { try await client.getTaskType(name: "x") }
            #expect(errors.count == 9)
            // The fixture really saw the key: the errors had it to leak.
            #expect(fixture.requests.allSatisfy { $0.apiKey == key })
            for e in errors {
                #expect(!e.description.contains("SEKRET"), "\(e.description)")
                #expect(!"\(e)".contains("SEKRET"))
                #expect(!String(reflecting: e).contains("SEKRET"))
            }
            #expect(errors.contains { $0.description.contains("[redacted]") })
        }
    }
}
