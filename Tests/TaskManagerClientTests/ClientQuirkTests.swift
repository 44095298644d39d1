import Foundation
import TaskManagerClient
import TaskManagerModel
import Testing

/// The client against the PHP server's answers as observed (spec 2, 5, 11.5),
/// replayed by a local HTTP fixture.
@Suite("Client: the PHP server's quirks")
struct ClientQuirkTests {
    @Test func sendsKeyAndOrderedJSON() async throws {
        try await Fixture.with({ _, _ in
            .success(
                #"{"id":"1","type":"t","status":"pending","dedupe_key":"k","message":"Task created successfully"}"#)
        }) { fixture, client in
            _ = try await client.createTask(type: "t", params: ["b": 1, "a": ["z": "/ü", "y": [:]]])
            let r = try #require(fixture.requests.first)
            #expect(r.method == "POST" && r.path == "/api/tasks")
            #expect(r.apiKey == "fixture-key")
            #expect(r.contentType == "application/json")
            #expect(r.text == #"{"type":"t","params":{"b":1,"a":{"z":"/ü","y":{}}}}"#)
        }
    }

    @Test func wholeFloatsKeepTheirFraction() async throws {
        try await Fixture.with({ _, _ in
            .success(
                #"{"id":"1","type":"t","status":"pending","dedupe_key":"k","message":"Task created successfully"}"#)
        }) { fixture, client in
            _ = try await client.createTask(
                type: "t", params: ["x": 1.0, "y": 2.5, "z": 1e25, "n": 1, "e": [:], "l": ["0": "a"]])
            let r = try #require(fixture.requests.first)
            #expect(r.text == #"{"type":"t","params":{"x":1.0,"y":2.5,"z":1.0e+25,"n":1,"e":{},"l":{"0":"a"}}}"#)
        }
    }

    @Test func acceptsStringIdsWhereThePHPServerSendsThem() async throws {
        try await Fixture.with({ r, _ in
            switch (r.method, r.path) {
            case ("POST", "/api/task-types/register"):
                return .success(#"{"id":"1","name":"test.a","version":"1.0.0","created":true}"#)
            case ("POST", "/api/tasks"):
                return .success(
                    #"""
                    {"id":"12","type":"test.a","status":"pending",\#
                    "dedupe_key":"ed0f58bd11d4fc850efd4aa7c3e236ade38fbb3e1b1f47540c365d0984be6a46","message":"Task \#
                    created successfully"}
                    """#
                )
            case ("POST", "/api/tasks/claim"):
                return .success(
                    #"""
                    {"id":12,"type":"test.a","params":{"v":"ok","nested":[]},"attempts":1,"priority":0,\#
                    "message":"Task claimed successfully"}
                    """#
                )
            case ("POST", "/api/tasks/12/progress"):
                return .success(#"{"id":"12","progress":50,"message":"Task progress updated successfully"}"#)
            case ("POST", "/api/tasks/12/complete"):
                return .success(#"{"id":"12","status":"pending (retry)","message":"Task completed"}"#)
            default:
                return .notFoundRoute
            }
        }) { _, client in
            let reg = try await client.registerTaskType(
                name: "test.a", version: "1.0.0", paramSchema: ["type": "object"])
            #expect(reg.id == 1 && reg.created)
            let created = try await client.createTask(type: "test.a", params: ["v": "ok"])
            #expect(created.id == 12 && !created.deduplicated && created.dedupeKey?.count == 64)
            let claimed = try #require(try await client.claimTask(workerID: "w", taskTypeID: reg.id))
            #expect(claimed.id == 12 && claimed.params == ["v": "ok", "nested": []])
            let progress = try await client.updateProgress(id: 12, workerID: "w", progress: 50)
            #expect(progress.id == 12 && progress.progress == 50)
            let done = try await client.completeTask(id: 12, workerID: "w", success: false, error: "x")
            #expect(done.id == 12 && done.status == "pending (retry)")
        }
    }

    @Test func emptyClaimAsThePHPTransactionBugIsNil() async throws {
        try await Fixture.with({ _, _ in .failure(500, "There is no active transaction") }) { fixture, client in
            let claimed = try await client.claimTask(workerID: "w", taskTypeID: 1)
            #expect(claimed == nil)
            #expect(fixture.count("POST", "/api/tasks/claim") == 1)
        }
    }

    @Test func emptyClaimAs404IsNil() async throws {
        try await Fixture.with({ _, _ in .failure(404, "No available tasks") }) { fixture, client in
            let claimed = try await client.claimTask(workerID: "w", taskTypeID: 1, policy: .priority)
            #expect(claimed == nil)
            let sent = try JSONParser.parse(try #require(fixture.requests.first).body)
            #expect(sent == ["worker_id": "w", "task_type_id": 1, "sort_by": "priority", "sort_order": "DESC"])
        }
    }

    @Test func otherClaimFailuresAreErrors() async throws {
        try await Fixture.with({ _, _ in
            .failure(500, "SQLSTATE[HY000]: General error: 2006 MySQL server has gone away")
        }) {
            fixture, client in
            await #expect(
                throws: TaskManagerError.server(
                    status: 500, message: "SQLSTATE[HY000]: General error: 2006 MySQL server has gone away")
            ) {
                try await client.claimTask(workerID: "w", taskTypeID: 1)
            }
            #expect(fixture.count("POST", "/api/tasks/claim") == 1)
        }
    }

    @Test func htmlMiddleware401IsUnauthorized() async throws {
        let body =
            #"""
            {"error":"Unauthorized","message":"Invalid or missing API key. Include X-API-Key header with your \#
            request.","timestamp":"2026-11-29T13:28:38+00:00"}
            """#
        try await Fixture.with({ _, _ in .html(401, body) }) { fixture, client in
            await #expect(
                throws: TaskManagerError.unauthorized(
                    "Invalid or missing API key. Include X-API-Key header with your request.")
            ) {
                try await client.listTasks()
            }
            // Not a transient failure: asked once.
            #expect(fixture.requests.count == 1)
        }
        // A proxy's own 401 page is still a 401.
        try await Fixture.with({ _, _ in .html(401, "<html><body>401 Authorization Required</body></html>") }) {
            _, client in
            do throws(TaskManagerError) {
                _ = try await client.health()
                Issue.record("expected .unauthorized")
            } catch {
                guard case .unauthorized = error else {
                    Issue.record("expected .unauthorized, got \(error)")
                    return
                }
            }
        }
    }

    @Test func middleware413IsPayloadTooLarge() async throws {
        let body =
            #"""
            {"error":"Request Too Large","message":"Request body exceeds maximum allowed size of 1 \#
            MB","timestamp":"2026-11-29T13:28:38+00:00"}
            """#
        try await Fixture.with({ _, _ in .html(413, body) }) { fixture, client in
            await #expect(throws: TaskManagerError.payloadTooLarge("Request body exceeds maximum allowed size of 1 MB"))
            {
                try await client.createTask(type: "t", params: ["a": 1])
            }
            #expect(fixture.requests.count == 1)
        }
    }

    @Test func itemsWrappersAroundSingleObjects() async throws {
        try await Fixture.with({ r, _ in
            switch r.path {
            case "/api/tasks/1":
                return .success(
                    #"""
                    {"items":[{"id":1,"type":"test.a","status":"completed","params":{"v":"abc","n":5},\#
                    "result":{"out":"done/ü"},"error_message":null,"priority":0,"progress":50,"attempts":1,\#
                    "claimed_by":"w2","claimed_at":"2026-11-29 13:28:50","completed_at":"2026-11-29 \#
                    13:28:55","created_at":"2026-11-29 13:28:43"}],"count":1}
                    """#
                )
            case "/api/task-types/test.a":
                return .success(
                    #"""
                    {"items":[{"id":1,"name":"test.a","version":"1.0.1","param_schema":{"type":"object",\#
                    "required":["v"]},"is_active":1,"created_at":"2026-11-29 13:28:38","updated_at":"2026-11-29 \#
                    13:28:38"}],"count":1}
                    """#
                )
            case "/api/task-types":
                return .success(
                    #"""
                    {"items":[{"id":1,"name":"test.a","version":"1.0.1","is_active":1,"created_at":"2026-11-29 \#
                    13:28:38","updated_at":"2026-11-29 \#
                    13:28:38"},{"id":2,"name":"test.b","version":"1","is_active":0,"created_at":"2026-11-29 \#
                    13:28:38","updated_at":"2026-11-29 13:28:38"}],"count":2}
                    """#
                )
            case "/api/tasks":
                return .success(
                    #"""
                    {"items":[{"id":2,"type":"test.a","status":"pending","priority":0,"progress":0,"attempts":0,\#
                    "claimed_by":null,"created_at":"2026-11-29 13:28:43","completed_at":null}],"count":1}
                    """#
                )
            default:
                return .success(#"{"items":[],"count":0}"#)
            }
        }) { _, client in
            let task = try await client.getTask(id: 1)
            #expect(
                task.id == 1 && task.status == .completed && task.result == ["out": "done/ü"] && task.claimedBy == "w2")
            #expect(task.params == ["v": "abc", "n": 5] && task.errorMessage == nil && task.progress == 50)

            let type = try await client.getTaskType(name: "test.a")
            #expect(
                type.id == 1 && type.version == "1.0.1" && type.isActive
                    && type.paramSchema == ["type": "object", "required": ["v"]])

            let types = try await client.listTaskTypes()
            #expect(types.map(\.name) == ["test.a", "test.b"] && types.map(\.isActive) == [true, false])
            #expect(types[0].usageCount == nil)

            let tasks = try await client.listTasks()
            #expect(tasks.map(\.id) == [2] && tasks[0].params == nil && tasks[0].claimedBy == nil)

            // The PHP server answers 200 with no items for what does not exist.
            await #expect(throws: TaskManagerError.notFound("Task not found")) { try await client.getTask(id: 999999) }
            await #expect(throws: TaskManagerError.notFound("Task type not found")) {
                try await client.getTaskType(name: "test.nonexistent")
            }
        }
    }

    @Test func duplicateAndDeduplicatedFlagsBothCount() async throws {
        try await Fixture.with({ _, n in
            switch n {
            case 1:
                return .success(
                    #"{"id":1,"status":"pending","deduplicated":true,"message":"Task already exists (deduplicated)"}"#)
            case 2: return .success(#"{"id":"1","status":"completed","duplicate":true}"#)
            default:
                return .success(
                    #"{"id":"2","type":"t","status":"pending","dedupe_key":"k","message":"Task created successfully"}"#)
            }
        }) { _, client in
            let first = try await client.createTask(type: "t", params: ["a": 1])
            #expect(first.id == 1 && first.deduplicated && first.status == "pending" && first.dedupeKey == nil)
            let second = try await client.createTask(type: "t", params: ["a": 1])
            #expect(second.id == 1 && second.deduplicated && second.status == "completed")
            let third = try await client.createTask(type: "t", params: ["a": 2])
            #expect(third.id == 2 && !third.deduplicated)
        }
    }

    @Test func validationErrorsKeepDetails() async throws {
        try await Fixture.with({ _, _ in
            .json(
                400,
                #"""
                {"success":false,"error":"Validation failed","timestamp":1795958923,"details":["Field 'params' must \#
                be of type object"]}
                """#
            )
        }) { fixture, client in
            await #expect(
                throws: TaskManagerError.validation(
                    "Validation failed", details: ["Field 'params' must be of type object"])
            ) {
                try await client.createTask(type: "t", params: [:])
            }
            #expect(fixture.requests.count == 1)
        }
    }

    @Test func htmlErrorPagesAndGarbageAreUndecodable() async throws {
        try await Fixture.with({ r, _ in
            switch r.path {
            case "/api/health":
                return .html(502, "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>")
            case "/api/tasks/claim": return .html(200, "<br />\n<b>Fatal error</b>: Uncaught PDOException")
            case "/api/tasks": return .json(200, #"{"unexpected":"shape"}"#)
            default: return .json(500, "")
            }
        }) { fixture, client in
            do throws(TaskManagerError) {
                _ = try await client.health()
                Issue.record("expected .undecodable")
            } catch {
                guard case .undecodable(502, let snippet) = error else {
                    Issue.record("expected .undecodable(502), got \(error)")
                    return
                }
                #expect(snippet.contains("502 Bad Gateway"))
            }
            // A GET is retried on a gateway page (maxAttempts = 3).
            #expect(fixture.count("GET", "/api/health") == 3)

            do throws(TaskManagerError) {
                _ = try await client.claimTask(workerID: "w", taskTypeID: 1)
                Issue.record("expected .undecodable")
            } catch {
                guard case .undecodable(200, _) = error else {
                    Issue.record("expected .undecodable(200), got \(error)")
                    return
                }
            }
            #expect(fixture.count("POST", "/api/tasks/claim") == 1)

            do throws(TaskManagerError) {
                _ = try await client.listTasks()
                Issue.record("expected .undecodable")
            } catch {
                guard case .undecodable(200, _) = error else {
                    Issue.record("expected .undecodable(200), got \(error)")
                    return
                }
            }
            do throws(TaskManagerError) {
                _ = try await client.completeTask(id: 1, workerID: "w", success: true)
                Issue.record("expected .undecodable")
            } catch {
                guard case .undecodable(500, _) = error else {
                    Issue.record("expected .undecodable(500), got \(error)")
                    return
                }
            }
            #expect(fixture.count("POST", "/api/tasks/1/complete") == 1)
        }
    }
}
